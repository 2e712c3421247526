"""Our protocol declarations (proto/digits_server/apis/) against the official ones, field by field.

The official descriptors come from the generated code that the kserve, tritonclient and
tensorflow-serving-api packages ship (installed in the ecosystem venv): their serialized
FileDescriptorProtos are read from the source text, never imported, so the official `inference.*`
and `tensorflow.serving.*` names never meet ours in one descriptor pool. Every message, field,
enum value and method we declare must exist there with the same number, name, type and label.
Also here: the ecosystem venv holds exactly one TensorFlow.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from digits_server.apis import inference_v2_pb2, tensorflow_serving_pb2
from tests.ecosystem.venv import KSERVE_REFERENCE, REPO, python, run_script, site_packages

FileProto = descriptor_pb2.FileDescriptorProto
# Fields that knowingly differ from the first reference, with why.
RENAMED = {
    # Triton's RepositoryModel{Load,Unload}Request carry the model name in field 2 (named
    # model_name there; KServe's model_name is field 1): we accept both.
    ("inference.RepositoryModelLoadRequest", 2): "model_name",
    ("inference.RepositoryModelUnloadRequest", 2): "model_name",
}


def serialized_files(path: Path) -> list[FileProto]:
    """The FileDescriptorProtos a generated *_pb2.py registers, read from its source without running it."""
    spec = importlib.util.spec_from_file_location("generate", REPO / "proto" / "generate.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    found = generator.embedded_descriptors(path.read_text())
    assert found, f"no serialized descriptor in {path}"
    return found


def messages(files: list[FileProto]) -> dict[str, descriptor_pb2.DescriptorProto]:
    """Every message (nested ones too) by full name."""
    out: dict[str, descriptor_pb2.DescriptorProto] = {}

    def walk(prefix: str, message: descriptor_pb2.DescriptorProto) -> None:
        out[f"{prefix}.{message.name}"] = message
        for nested in message.nested_type:
            walk(f"{prefix}.{message.name}", nested)

    for file in files:
        for message in file.message_type:
            walk(file.package, message)
    return out


def services(files: list[FileProto]) -> dict[str, descriptor_pb2.ServiceDescriptorProto]:
    return {f"{file.package}.{service.name}": service for file in files for service in file.service}


def shape(field: descriptor_pb2.FieldDescriptorProto) -> tuple:
    """What the wire and the generated code depend on, besides the name and the oneof."""
    return (field.type, field.label, field.type_name, field.proto3_optional)


def call_shape(method: descriptor_pb2.MethodDescriptorProto) -> tuple:
    """A method's request and response types and streaming."""
    return (method.input_type, method.output_type, method.client_streaming, method.server_streaming)


def oneof_of(message: descriptor_pb2.DescriptorProto, field: descriptor_pb2.FieldDescriptorProto) -> str | None:
    return message.oneof_decl[field.oneof_index].name if field.HasField("oneof_index") else None


def differences(ours: FileProto, references: list[list[FileProto]]) -> list[str]:
    """What in `ours` has no identical counterpart in the first reference that has it."""
    found: list[str] = []
    official = [messages(files) for files in references]
    for name, message in messages([ours]).items():
        candidates = [table[name] for table in official if name in table]
        if not candidates:
            found.append(f"{name}: no official message of that name")
            continue
        for field in message.field:
            matches = [(c, f) for c in candidates for f in c.field if f.number == field.number]
            if not matches:
                found.append(f"{name}.{field.name} = {field.number}: no official field with that number")
                continue
            parent, reference = matches[0]
            renamed = RENAMED.get((name, field.number)) == reference.name
            want_name = field.name if renamed else reference.name
            mine = (field.name, *shape(field), oneof_of(message, field))
            theirs = (want_name, *shape(reference), oneof_of(parent, reference))
            if mine != theirs:
                found.append(f"{name}.{field.name}: ours {mine} != official {theirs}")
            if field.json_name and reference.json_name and field.json_name != reference.json_name:
                found.append(f"{name}.{field.name}: json_name {field.json_name} != {reference.json_name}")
        for enum in message.enum_type:
            reference_enums = {e.name: e for c in candidates for e in c.enum_type}
            values = {(v.name, v.number) for v in enum.value}
            reference = reference_enums.get(enum.name)
            if reference is None or values != {(v.name, v.number) for v in reference.value}:
                found.append(f"{name}.{enum.name}: enum values differ")
    official_services = [services(files) for files in references]
    for name, service in services([ours]).items():
        methods = {m.name: m for table in official_services if name in table for m in table[name].method}
        for method in service.method:
            reference = methods.get(method.name)
            if reference is None or call_shape(method) != call_shape(reference):
                theirs = reference and call_shape(reference)
                found.append(f"{name}.{method.name}: {call_shape(method)} != official {theirs}")
    return found


def ours(module) -> FileProto:
    proto = FileProto()
    module.DESCRIPTOR.CopyToProto(proto)
    return proto


@pytest.fixture(scope="module")
def ecosystem() -> Path:
    python()  # fails with the setup command when the venv is missing
    return site_packages()


def test_v2_matches_kserve_then_triton(ecosystem: Path) -> None:
    kserve = serialized_files(KSERVE_REFERENCE / "kserve" / "protocol" / "grpc" / "grpc_predict_v2_pb2.py")
    triton = serialized_files(ecosystem / "tritonclient" / "grpc" / "service_pb2.py")
    assert differences(ours(inference_v2_pb2), [kserve, triton]) == []


def test_tensorflow_serving_matches_the_official_apis(ecosystem: Path) -> None:
    apis = sorted((ecosystem / "tensorflow_serving" / "apis").glob("*_pb2.py"))
    official = [file for path in apis for file in serialized_files(path)]
    assert differences(ours(tensorflow_serving_pb2), [official]) == []


def test_the_comparison_catches_a_renumbered_or_retyped_field(ecosystem: Path) -> None:
    kserve = serialized_files(KSERVE_REFERENCE / "kserve" / "protocol" / "grpc" / "grpc_predict_v2_pb2.py")
    triton = serialized_files(ecosystem / "tritonclient" / "grpc" / "service_pb2.py")
    broken = ours(inference_v2_pb2)
    request = next(m for m in broken.message_type if m.name == "ModelInferRequest")
    next(f for f in request.field if f.name == "raw_input_contents").number = 8
    next(f for f in request.field if f.name == "id").type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
    found = differences(broken, [kserve, triton])
    assert len(found) == 2, found
    assert found[0].startswith("inference.ModelInferRequest.id: ours ('id', 12,"), found
    assert found[1] == "inference.ModelInferRequest.raw_input_contents = 8: no official field with that number"


def test_tensorflow_messages_come_from_the_installed_tensorflow() -> None:
    from tensorflow.core.framework import tensor_pb2

    inputs = tensorflow_serving_pb2.PredictRequest.DESCRIPTOR.fields_by_name["inputs"]
    field = inputs.message_type.fields_by_name["value"]
    assert field.message_type is tensor_pb2.TensorProto.DESCRIPTOR, "one TensorProto in the process, TensorFlow's"


def test_the_ecosystem_venv_has_exactly_one_tensorflow() -> None:
    summary = run_script("check_env.py")
    assert summary["problems"] == [] and summary["tensorflow_distributions"] == ["tensorflow_cpu"], summary
    assert summary["protobuf"].startswith("6."), summary


def test_the_one_tensorflow_check_sees_a_second_one(tmp_path: Path) -> None:
    for dist in ("tensorflow_cpu-2.21.0", "tensorflow-2.21.0"):
        info = tmp_path / f"{dist}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist.rsplit('-', 1)[0]}\nVersion: 2.21.0\n")
        (info / "RECORD").write_text("tensorflow/__init__.py,,\n")
    code = (
        "import json, sys; sys.path.insert(0, '.'); from check_env import tensorflow_distributions; "
        f"print(json.dumps({{'found': tensorflow_distributions([{str(tmp_path)!r}])}}))"
    )
    assert run_script("check_env.py", code=code) == {"found": ["tensorflow", "tensorflow_cpu"]}


def test_no_tritonclient_or_tf_serving_in_the_server_environment() -> None:
    import importlib.util

    assert importlib.util.find_spec("tritonclient") is None, "the server's venv must not get tritonclient"
    assert importlib.util.find_spec("tensorflow_serving") is None, (
        "tensorflow-serving-api in the server's venv would bring a second TensorFlow and clash with "
        f"digits_server.apis in the descriptor pool ({sys.executable})"
    )
