//! ExportPipeline / ImportPipeline end to end: a pipeline made over the API (generated ids)
//! with a source, a destination, a pipeline processor holding a secret, a connector
//! processor with a condition and workers, and its own DLQ settings is exported over gRPC,
//! HTTP and the CLI; each export is imported after the pipeline is deleted and gives back
//! the same pipeline (ids, names, settings, order, DLQ; stopped), the secret never in clear
//! in any export; the imported pipeline runs.

use crate::harness::{
    culvert, data_dir, grpc_clients as connect, json_lines, wait_until, GrpcClients as Clients,
    Server,
};
use crate::http_client::{call, call_any};
use culvert_api::pb::api::v1 as pb;
use std::collections::HashMap;
use std::path::Path;
use tonic::Code;

const SECRET: &str = "Bearer xyz-export-secret";

fn settings(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The pipeline of the module's documentation, made over gRPC; its id.
async fn create(c: &mut Clients, out: &Path) -> String {
    let p = c
        .pipelines
        .create_pipeline(pb::CreatePipelineRequest {
            config: Some(pb::pipeline::Config {
                name: "exported".into(),
                description: "made over the API, exported, imported".into(),
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .pipeline
        .unwrap();
    let connector =
        |kind: pb::connector::Type, plugin: &str, name: &str, s| pb::CreateConnectorRequest {
            r#type: kind as i32,
            plugin: plugin.into(),
            pipeline_id: p.id.clone(),
            config: Some(pb::connector::Config {
                name: name.into(),
                settings: s,
            }),
        };
    let source = c
        .connectors
        .create_connector(connector(
            pb::connector::Type::Source,
            "builtin:generator",
            "gen",
            settings(&[
                ("format.type", "structured"),
                ("format.options.id", "int"),
                ("recordCount", "10"),
            ]),
        ))
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    c.connectors
        .create_connector(connector(
            pb::connector::Type::Destination,
            "builtin:file",
            "out",
            settings(&[("path", out.to_str().unwrap())]),
        ))
        .await
        .unwrap();
    let processor = |kind: pb::processor::parent::Type,
                     parent: &str,
                     plugin: &str,
                     s,
                     workers,
                     condition: &str| {
        pb::CreateProcessorRequest {
            plugin: plugin.into(),
            parent: Some(pb::processor::Parent {
                r#type: kind as i32,
                id: parent.into(),
            }),
            config: Some(pb::processor::Config {
                settings: s,
                workers,
            }),
            condition: condition.into(),
            ..Default::default()
        }
    };
    // A secret (webhook.http's headers are sensitive) on a processor whose condition never
    // holds, so that running the pipeline calls no webhook.
    c.processors
        .create_processor(processor(
            pb::processor::parent::Type::Pipeline,
            &p.id,
            "webhook.http",
            settings(&[
                ("request.url", "http://127.0.0.1:9/hook"),
                ("headers.Authorization", SECRET),
            ]),
            2,
            "{{ eq .Metadata.never \"set\" }}",
        ))
        .await
        .unwrap();
    for (field, value) in [("exported", "one"), ("again", "two")] {
        c.processors
            .create_processor(processor(
                pb::processor::parent::Type::Connector,
                &source.id,
                "field.set",
                settings(&[("field", &format!(".Metadata.{field}")), ("value", value)]),
                3,
                "{{ true }}",
            ))
            .await
            .unwrap();
    }
    c.pipelines
        .update_dlq(pb::UpdateDlqRequest {
            id: p.id.clone(),
            dlq: Some(pb::pipeline::Dlq {
                plugin: "builtin:log".into(),
                settings: settings(&[("level", "error"), ("message", "dead letter")]),
                window_size: 4,
                window_nack_threshold: 2,
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    p.id
}

/// What the API answers about the pipeline `id`, without timestamps or versions (an import
/// writes every entity anew).
#[derive(Debug, PartialEq)]
struct Snapshot {
    pipeline: pb::Pipeline,
    connectors: Vec<pb::Connector>,
    processors: Vec<pb::Processor>,
    dlq: pb::pipeline::Dlq,
    export: pb::ExportPipelineResponse,
}

fn untimed_pipeline(mut p: pb::Pipeline) -> pb::Pipeline {
    p.created_at = None;
    p.updated_at = None;
    p.version = 0;
    p
}

fn untimed_connectors(list: Vec<pb::Connector>) -> Vec<pb::Connector> {
    list.into_iter()
        .map(|mut c| {
            c.created_at = None;
            c.updated_at = None;
            c.version = 0;
            c
        })
        .collect()
}

fn untimed_processors(list: Vec<pb::Processor>) -> Vec<pb::Processor> {
    list.into_iter()
        .map(|mut p| {
            p.created_at = None;
            p.updated_at = None;
            p.version = 0;
            p
        })
        .collect()
}

async fn export(c: &mut Clients, id: &str) -> pb::ExportPipelineResponse {
    c.pipelines
        .export_pipeline(pb::ExportPipelineRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

/// The ImportPipeline request that imports what ExportPipeline answered.
fn import_request(export: &pb::ExportPipelineResponse) -> pb::ImportPipelineRequest {
    pb::ImportPipelineRequest {
        pipeline: export.pipeline.clone(),
        connectors: export.connectors.clone(),
        processors: export.processors.clone(),
        dlq: export.dlq.clone(),
    }
}

async fn snapshot(c: &mut Clients, id: &str) -> Snapshot {
    let pipeline = c
        .pipelines
        .get_pipeline(pb::GetPipelineRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .pipeline
        .unwrap();
    let connectors = c
        .connectors
        .list_connectors(pb::ListConnectorsRequest {
            pipeline_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .connectors;
    let mut parent_ids = vec![id.to_owned()];
    parent_ids.extend(connectors.iter().map(|c| c.id.clone()));
    let mut processors = c
        .processors
        .list_processors(pb::ListProcessorsRequest { parent_ids })
        .await
        .unwrap()
        .into_inner()
        .processors;
    processors.sort_by(|a, b| a.id.cmp(&b.id));
    let dlq = c
        .pipelines
        .get_dlq(pb::GetDlqRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .dlq
        .unwrap();
    let mut export = export(c, id).await;
    export.pipeline = export.pipeline.map(untimed_pipeline);
    export.connectors = untimed_connectors(export.connectors);
    export.processors = untimed_processors(export.processors);
    Snapshot {
        pipeline: untimed_pipeline(pipeline),
        connectors: untimed_connectors(connectors),
        processors: untimed_processors(processors),
        dlq,
        export,
    }
}

/// Delete the pipeline `id`, its children first.
async fn delete(c: &mut Clients, id: &str) {
    let p = c
        .pipelines
        .get_pipeline(pb::GetPipelineRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .pipeline
        .unwrap();
    let mut processors = p.processor_ids.clone();
    for connector in &p.connector_ids {
        let found = c
            .connectors
            .get_connector(pb::GetConnectorRequest {
                id: connector.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .connector
            .unwrap();
        processors.extend(found.processor_ids);
    }
    for processor in processors {
        c.processors
            .delete_processor(pb::DeleteProcessorRequest {
                id: processor,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    for connector in p.connector_ids {
        c.connectors
            .delete_connector(pb::DeleteConnectorRequest {
                id: connector,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    c.pipelines
        .delete_pipeline(pb::DeletePipelineRequest {
            id: id.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// The secret is not in `text` in clear, and the webhook's header is there sealed.
fn sealed_only(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} shows the secret: {text}");
    assert!(
        !text.contains("xyz-export"),
        "{what} shows the secret: {text}"
    );
    assert!(text.contains("culvert:sealed:v1:"), "{what}: {text}");
    assert!(
        !text.contains("***"),
        "{what} hides instead of sealing: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_round_trips_through_grpc_http_and_cli_exports_with_its_secret_sealed() {
    let (dir, data) = data_dir();
    let out = dir.path().join("out.jsonl");
    let mut server = Server::start(&data, &[]);
    let grpc = server.grpc_address();
    let http = server.http_address();
    let mut c = connect(&grpc).await;
    let id = create(&mut c, &out).await;
    let original = snapshot(&mut c, &id).await;
    assert_eq!(original.connectors.len(), 2);
    assert_eq!(original.processors.len(), 3);
    assert_eq!(original.export.processors.len(), 3);

    // gRPC: the export carries everything, the secret sealed (even without the export
    // metadata).
    let by_grpc = export(&mut c, &id).await;
    sealed_only("the gRPC export", &format!("{by_grpc:?}"));
    let webhook = &by_grpc.processors[0];
    assert_eq!(webhook.plugin, "webhook.http");
    assert!(
        webhook.config.as_ref().unwrap().settings["headers.Authorization"]
            .starts_with("culvert:sealed:v1:")
    );
    // HTTP: the pipeline's fields with connectors, processors and dlq beside them.
    let by_http = call(&http, "POST", &format!("/v1/pipelines/{id}/export"), None);
    sealed_only("the HTTP export", &by_http.to_string());
    assert_eq!(by_http["id"], id.as_str(), "{by_http}");
    assert_eq!(by_http["config"]["name"], "exported", "{by_http}");
    assert_eq!(by_http["connectors"].as_array().unwrap().len(), 2);
    assert_eq!(by_http["dlq"]["windowSize"], "4", "{by_http}");
    // The CLI: the same answer as JSON.
    let (code, by_cli, stderr) = culvert(&[
        "pipelines",
        "export",
        &id,
        "--format",
        "json",
        "--grpc.address",
        &grpc,
    ]);
    assert_eq!(code, 0, "{stderr}");
    sealed_only("the CLI export", &by_cli);
    let cli_file = dir.path().join("export.json");
    std::fs::write(&cli_file, &by_cli).unwrap();

    // An existing pipeline is not imported over.
    let refused = c
        .pipelines
        .import_pipeline(import_request(&by_grpc))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists, "{refused:?}");
    let (status, _) = call_any(&http, "POST", "/v1/pipelines/import", Some(by_http.clone()));
    assert_eq!(status, 409);

    // Each export, imported after a delete, gives the same pipeline back, stopped.
    delete(&mut c, &id).await;
    let imported = c
        .pipelines
        .import_pipeline(import_request(&by_grpc))
        .await
        .unwrap()
        .into_inner()
        .pipeline
        .unwrap();
    assert_eq!(imported.id, id);
    assert_eq!(
        snapshot(&mut c, &id).await,
        original,
        "after the gRPC import"
    );

    delete(&mut c, &id).await;
    let imported = call(&http, "POST", "/v1/pipelines/import", Some(by_http.clone()));
    assert_eq!(imported["id"], id.as_str(), "{imported}");
    assert_eq!(imported["state"]["status"], "STATUS_STOPPED", "{imported}");
    assert_eq!(
        snapshot(&mut c, &id).await,
        original,
        "after the HTTP import"
    );

    delete(&mut c, &id).await;
    let (code, stdout, stderr) = culvert(&[
        "pipelines",
        "import",
        cli_file.to_str().unwrap(),
        "--grpc.address",
        &grpc,
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(
        snapshot(&mut c, &id).await,
        original,
        "after the CLI import"
    );

    // The imported pipeline runs: its processors on every record, into the file.
    c.pipelines
        .start_pipeline(pb::StartPipelineRequest { id: id.clone() })
        .await
        .unwrap();
    wait_until("the imported pipeline's 10 records", || {
        json_lines(&out).len() >= 10
    });
    for record in json_lines(&out) {
        assert_eq!(record["metadata"]["exported"], "one", "{record}");
        assert_eq!(record["metadata"]["again"], "two", "{record}");
    }
    drop(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_import_names_the_field_and_writes_nothing() {
    let (dir, data) = data_dir();
    let mut server = Server::start(&data, &[]);
    let grpc = server.grpc_address();
    let http = server.http_address();
    let mut c = connect(&grpc).await;
    let id = create(&mut c, &dir.path().join("out.jsonl")).await;
    let exported = export(&mut c, &id).await;
    delete(&mut c, &id).await;
    let request = || import_request(&exported);
    let field = |status: &tonic::Status| {
        status
            .message()
            .split_once(": ")
            .map(|(_, rest)| rest.split(':').next().unwrap().to_owned())
            .unwrap_or_default()
    };

    // An unknown plugin on the second connector.
    let mut bad = request();
    bad.connectors[1].plugin = "builtin:nope".into();
    let status = c.pipelines.import_pipeline(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(field(&status), "connectors[1].plugin", "{status:?}");
    // A sealed value that does not open under the server's key.
    let mut bad = request();
    let settings = &mut bad.processors[0].config.as_mut().unwrap().settings;
    let sealed = settings.get_mut("headers.Authorization").unwrap();
    sealed.replace_range(sealed.len() - 6.., "AAAAAA");
    let status = c.pipelines.import_pipeline(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        field(&status).starts_with("processors[0].config.settings"),
        "{status:?}"
    );
    // Over HTTP: 400, the field named.
    let mut body = serde_json::to_value(exported.pipeline.clone().unwrap()).unwrap();
    body["connectors"] = serde_json::json!([]);
    body["processors"] = serde_json::json!([{"id": "x", "plugin": "field.set",
        "parent": {"type": "TYPE_CONNECTOR", "id": "missing"}}]);
    let (status, reply) = call_any(&http, "POST", "/v1/pipelines/import", Some(body));
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .starts_with("processors[0].parent.id"),
        "{reply}"
    );

    // Nothing was written.
    let status = c
        .pipelines
        .get_pipeline(pb::GetPipelineRequest { id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(c
        .connectors
        .list_connectors(pb::ListConnectorsRequest { pipeline_id: id })
        .await
        .unwrap()
        .into_inner()
        .connectors
        .is_empty());
}
