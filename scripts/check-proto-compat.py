#!/usr/bin/env python3
"""Check that Culvert's .proto files are wire-compatible with Conduit's.

Compares, package by package, every message (field names, numbers, types, labels, oneofs),
enum (value names and numbers) and service (methods, request/response types, streaming) of
two descriptor sets. Wire compatibility needs exactly these to agree; comments, options and
HTTP annotations do not matter.

Usage:
  python3 -m grpc_tools.protoc -I <their-include-dirs> --include_imports \
      --descriptor_set_out=theirs.pb api/v1/api.proto
  python3 -m grpc_tools.protoc -I proto --include_imports \
      --descriptor_set_out=ours.pb conduit/api/v1/api.proto
  scripts/check-proto-compat.py theirs.pb ours.pb api.v1 config.v1 opencdc.v1

(`pip install grpcio-tools` provides protoc. Conduit's api.proto imports google/api and
openapiv2 annotations; strip those options, or add their protos to the include path.)
Exits 1 and prints each difference when the two disagree.
"""
import sys

from google.protobuf import descriptor_pb2

# Fields Culvert adds on purpose (wire-compatible: a Conduit client skips unknown fields),
# by package and message. They are left out of the comparison.
EXTENSIONS = {
    ("api.v1", "ExportPipelineResponse"): {"connectors", "processors", "dlq"},
    ("api.v1", "ImportPipelineRequest"): {"connectors", "processors", "dlq"},
    # Versions for optimistic concurrency (entities carry theirs; changes may expect one).
    ("api.v1", "Pipeline"): {"version"},
    ("api.v1", "Connector"): {"version"},
    ("api.v1", "Processor"): {"version"},
    ("api.v1", "UpdatePipelineRequest"): {"expected_version"},
    ("api.v1", "DeletePipelineRequest"): {"expected_version"},
    ("api.v1", "UpdateDLQRequest"): {"expected_version"},
    ("api.v1", "UpdateConnectorRequest"): {"expected_version"},
    ("api.v1", "DeleteConnectorRequest"): {"expected_version"},
    ("api.v1", "UpdateProcessorRequest"): {"expected_version"},
    ("api.v1", "DeleteProcessorRequest"): {"expected_version"},
}


def shape(path, package):
    fds = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as f:
        fds.ParseFromString(f.read())
    out = {}

    def walk(prefix, messages, enums):
        for enum in enums:
            out[prefix + enum.name] = sorted((v.name, v.number) for v in enum.value)
        for message in messages:
            name = prefix + message.name
            out[name] = sorted(
                (
                    field.name,
                    field.number,
                    field.type,
                    field.label,
                    field.type_name,
                    message.oneof_decl[field.oneof_index].name
                    if field.HasField("oneof_index")
                    else "",
                )
                for field in message.field
                if field.name not in EXTENSIONS.get((package, name), set())
            )
            walk(name + ".", message.nested_type, message.enum_type)

    for file in fds.file:
        if file.package != package:
            continue
        walk("", file.message_type, file.enum_type)
        for service in file.service:
            out["service " + service.name] = sorted(
                (m.name, m.input_type, m.output_type, m.client_streaming, m.server_streaming)
                for m in service.method
            )
    return out


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    theirs_path, ours_path, packages = sys.argv[1], sys.argv[2], sys.argv[3:]
    problems = 0
    for package in packages:
        theirs, ours = shape(theirs_path, package), shape(ours_path, package)
        if not theirs:
            print(f"{package}: not found in {theirs_path}")
            problems += 1
        for key in sorted(set(theirs) | set(ours)):
            if theirs.get(key) != ours.get(key):
                problems += 1
                print(f"{package}: {key} differs\n  theirs: {theirs.get(key)}\n  ours:   {ours.get(key)}")
        print(f"{package}: {len(theirs)} definitions compared")
    print("compatible" if problems == 0 else f"{problems} difference(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
