"""Who may call: bearer-token scopes, their guard on every handler, TLS material and credentials."""
