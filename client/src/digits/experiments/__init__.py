"""Client-side A/B tools: replaying labelled digits through an experiment."""
