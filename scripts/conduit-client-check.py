#!/usr/bin/env python3
"""Drive a running Culvert with a gRPC client generated from *Conduit's own* api.proto.

Conduit's .proto files are not part of this repository (and CI cannot fetch them), so this
check runs where a checkout of Conduit and conduit-commons is at hand:

  scripts/conduit-client-check.py --conduit ~/src/conduit --commons ~/src/conduit-commons \
      --address 127.0.0.1:8084

It copies api/v1/api.proto, config/v1/parameter.proto and opencdc/v1/opencdc.proto into a
temp dir, drops the google.api / openapiv2 annotation imports and options (HTTP and doc
annotations, which do not touch the wire format), generates Python stubs with grpcio-tools
(`pip install grpcio-tools`), and runs a whole lifecycle against the server: pipelines,
connectors, processors on a connector and on the pipeline, DLQ, start/stop, info, plugin
lists, deletes, and the status codes of the error cases. Exits non-zero on the first
difference from what Conduit would answer.
"""
import argparse
import importlib
import pathlib
import re
import sys
import tempfile


def strip_annotations(text):
    """Remove imports and options that only matter to grpc-gateway and openapiv2."""
    text = re.sub(r'^import "(google/api|protoc-gen-openapiv2)/[^"]+";\n', "", text, flags=re.M)
    # option (google.api.http) = { ... }; and openapiv2 options, possibly nested braces.
    out, i = [], 0
    pattern = re.compile(r"option \((google\.api\.http|grpc\.gateway\.[a-z0-9_.]+)\)\s*=\s*\{")
    while True:
        m = pattern.search(text, i)
        if not m:
            out.append(text[i:])
            break
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        if text[j:j + 1] == ";":
            j += 1
        i = j
    text = "".join(out)
    # Field options such as [(google.api.field_behavior) = OUTPUT_ONLY] or openapiv2 ones.
    text = re.sub(r"\s*\[\((google\.api\.field_behavior|grpc\.gateway\.[a-z0-9_.]+)\)[^\]]*\]", "", text)
    return text


def generate(conduit, commons, out):
    files = {
        "api/v1/api.proto": pathlib.Path(conduit) / "proto/api/v1/api.proto",
        "config/v1/parameter.proto": pathlib.Path(commons) / "proto/config/v1/parameter.proto",
        "opencdc/v1/opencdc.proto": pathlib.Path(commons) / "proto/opencdc/v1/opencdc.proto",
    }
    for rel, src in files.items():
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(strip_annotations(src.read_text()))
    from grpc_tools import protoc
    import grpc_tools

    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    args = ["protoc", f"-I{out}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(args + list(files)) != 0:
        sys.exit("protoc failed on Conduit's protos")
    for pkg in ["api", "api/v1", "config", "config/v1", "opencdc", "opencdc/v1"]:
        (out / pkg / "__init__.py").touch()
    sys.path.insert(0, str(out))


GENERATOR = {"format.type": "structured", "format.options.id": "int", "rate": "1"}


def expect_code(call, code, what):
    import grpc

    try:
        call()
    except grpc.RpcError as e:
        if e.code() != code:
            sys.exit(f"{what}: expected {code}, got {e.code()}: {e.details()}")
        return
    sys.exit(f"{what}: expected {code}, the call succeeded")


def run(address):
    import grpc

    pb = importlib.import_module("api.v1.api_pb2")
    rpc = importlib.import_module("api.v1.api_pb2_grpc")
    channel = grpc.insecure_channel(address)
    pipelines = rpc.PipelineServiceStub(channel)
    connectors = rpc.ConnectorServiceStub(channel)
    processors = rpc.ProcessorServiceStub(channel)
    info = rpc.InformationServiceStub(channel)
    plugins = rpc.PluginServiceStub(channel)
    code = grpc.StatusCode

    name = "conduit-client-check"
    p = pipelines.CreatePipeline(
        pb.CreatePipelineRequest(config=pb.Pipeline.Config(name=name, description="d"))
    ).pipeline
    assert p.state.status == pb.Pipeline.STATUS_STOPPED, p
    assert p.created_at.seconds > 0, p
    got = pipelines.GetPipeline(pb.GetPipelineRequest(id=p.id)).pipeline
    assert got == p, (got, p)
    listed = pipelines.ListPipelines(pb.ListPipelinesRequest(name=name)).pipelines
    assert [x.id for x in listed] == [p.id], listed
    p = pipelines.UpdatePipeline(
        pb.UpdatePipelineRequest(id=p.id, config=pb.Pipeline.Config(name=name, description="e"))
    ).pipeline
    assert p.config.description == "e"
    dlq = pipelines.UpdateDLQ(
        pb.UpdateDLQRequest(id=p.id, dlq=pb.Pipeline.DLQ(plugin="builtin:log", window_size=3))
    ).dlq
    assert dlq.window_size == 3
    assert pipelines.GetDLQ(pb.GetDLQRequest(id=p.id)).dlq == dlq

    src = connectors.CreateConnector(pb.CreateConnectorRequest(
        type=pb.Connector.TYPE_SOURCE, plugin="builtin:generator", pipeline_id=p.id,
        config=pb.Connector.Config(name="src", settings=GENERATOR))).connector
    dst = connectors.CreateConnector(pb.CreateConnectorRequest(
        type=pb.Connector.TYPE_DESTINATION, plugin="builtin:log", pipeline_id=p.id,
        config=pb.Connector.Config(name="dst"))).connector
    assert src.WhichOneof("state") == "source_state", src
    assert dst.WhichOneof("state") == "destination_state", dst
    assert connectors.GetConnector(pb.GetConnectorRequest(id=src.id)).connector == src
    ids = {c.id for c in connectors.ListConnectors(pb.ListConnectorsRequest(pipeline_id=p.id)).connectors}
    assert ids == {src.id, dst.id}, ids
    src = connectors.UpdateConnector(pb.UpdateConnectorRequest(
        id=src.id, config=pb.Connector.Config(name="src", settings={**GENERATOR, "rate": "2"}))).connector
    assert src.config.settings["rate"] == "2"

    proc_c = processors.CreateProcessor(pb.CreateProcessorRequest(
        plugin="field.set", parent=pb.Processor.Parent(type=pb.Processor.Parent.TYPE_CONNECTOR, id=src.id),
        config=pb.Processor.Config(settings={"field": ".Metadata.x"}, workers=1))).processor
    proc_p = processors.CreateProcessor(pb.CreateProcessorRequest(
        plugin="filter", parent=pb.Processor.Parent(type=pb.Processor.Parent.TYPE_PIPELINE, id=p.id),
        condition='{{ eq .Metadata.x "never" }}')).processor
    assert processors.GetProcessor(pb.GetProcessorRequest(id=proc_c.id)).processor == proc_c
    ids = {x.id for x in processors.ListProcessors(pb.ListProcessorsRequest(parent_ids=[src.id, p.id])).processors}
    assert ids == {proc_c.id, proc_p.id}, ids
    proc_c = processors.UpdateProcessor(pb.UpdateProcessorRequest(
        id=proc_c.id, config=pb.Processor.Config(settings={"field": ".Metadata.y"}, workers=2))).processor
    assert proc_c.config.workers == 2
    expect_code(lambda: processors.CreateProcessor(pb.CreateProcessorRequest(
        plugin="no.such.processor", parent=pb.Processor.Parent(type=pb.Processor.Parent.TYPE_PIPELINE, id=p.id))),
        code.NOT_FOUND, "unknown processor plugin")

    assert info.GetInfo(pb.GetInfoRequest()).info.version
    connectors.ListConnectorPlugins(pb.ListConnectorPluginsRequest())
    names = {x.name for x in processors.ListProcessorPlugins(pb.ListProcessorPluginsRequest()).plugins}
    assert "builtin:field.set@v0.1.0" in names, names
    plugins.ListPlugins(pb.ListPluginsRequest())

    # Settings are checked at start, as in Conduit: field.set without `value` fails it.
    expect_code(lambda: pipelines.StartPipeline(pb.StartPipelineRequest(id=p.id)), code.INTERNAL,
                "start with an invalid processor")
    proc_c = processors.UpdateProcessor(pb.UpdateProcessorRequest(
        id=proc_c.id, config=pb.Processor.Config(settings={"field": ".Metadata.y", "value": "{{ .Operation }}"},
                                                 workers=2))).processor
    pipelines.StartPipeline(pb.StartPipelineRequest(id=p.id))
    expect_code(lambda: pipelines.UpdatePipeline(pb.UpdatePipelineRequest(
        id=p.id, config=pb.Pipeline.Config(name="x"))), code.FAILED_PRECONDITION, "edit while running")
    pipelines.StopPipeline(pb.StopPipelineRequest(id=p.id, force=True))

    expect_code(lambda: pipelines.GetPipeline(pb.GetPipelineRequest(id="nope")), code.NOT_FOUND, "unknown id")
    expect_code(lambda: pipelines.CreatePipeline(pb.CreatePipelineRequest(
        config=pb.Pipeline.Config(name=""))), code.INVALID_ARGUMENT, "empty name")
    expect_code(lambda: pipelines.CreatePipeline(pb.CreatePipelineRequest(
        config=pb.Pipeline.Config(name=name))), code.ALREADY_EXISTS, "taken name")
    expect_code(lambda: connectors.CreateConnector(pb.CreateConnectorRequest(
        type=pb.Connector.TYPE_UNSPECIFIED, plugin="builtin:log", pipeline_id=p.id,
        config=pb.Connector.Config(name="c"))), code.INVALID_ARGUMENT, "connector type")
    print(f"ok: a client generated from Conduit's api.proto drove {address} "
          f"(pipeline {p.id}, connectors {src.id} {dst.id}, processors {proc_c.id} {proc_p.id})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conduit", required=True, help="a checkout of ConduitIO/conduit")
    parser.add_argument("--commons", required=True, help="a checkout of ConduitIO/conduit-commons")
    parser.add_argument("--address", default="127.0.0.1:8084", help="Culvert's gRPC address")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(args.conduit, args.commons, pathlib.Path(tmp))
        run(args.address)


if __name__ == "__main__":
    main()
