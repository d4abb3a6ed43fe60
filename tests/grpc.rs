//! Every RPC of Conduit's `api.v1` over real gRPC against the `culvert` binary, with a
//! client generated from our proto: the happy paths, the error codes, nothing stored on
//! error, the same state after a restart, and the server's limits. Each test checks one
//! thing on a server of its own, so a failure hides no other check.

use crate::harness::{data_dir, Server};
use culvert_api::pb::api::v1 as pb;
use pb::connector_service_client::ConnectorServiceClient;
use pb::information_service_client::InformationServiceClient;
use pb::pipeline_service_client::PipelineServiceClient;
use pb::plugin_service_client::PluginServiceClient;
use pb::processor_service_client::ProcessorServiceClient;
use std::collections::HashMap;
use std::path::PathBuf;
use tempfile::TempDir;
use tonic::transport::Channel;
use tonic::Code;

struct Clients {
    pipelines: PipelineServiceClient<Channel>,
    connectors: ConnectorServiceClient<Channel>,
    processors: ProcessorServiceClient<Channel>,
    info: InformationServiceClient<Channel>,
    plugins: PluginServiceClient<Channel>,
}

async fn channel(server: &mut Server) -> Channel {
    let address = server.grpc_address();
    Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to the gRPC API")
}

async fn connect(server: &mut Server) -> Clients {
    let channel = channel(server).await;
    Clients {
        pipelines: PipelineServiceClient::new(channel.clone()),
        connectors: ConnectorServiceClient::new(channel.clone()),
        processors: ProcessorServiceClient::new(channel.clone()),
        info: InformationServiceClient::new(channel.clone()),
        plugins: PluginServiceClient::new(channel),
    }
}

fn config(name: &str) -> Option<pb::pipeline::Config> {
    Some(pb::pipeline::Config {
        name: name.into(),
        description: format!("{name} description"),
    })
}

fn generator_settings() -> HashMap<String, String> {
    HashMap::from([
        ("format.type".into(), "structured".into()),
        ("format.options.id".into(), "int".into()),
        ("recordCount".into(), "10".into()),
    ])
}

fn code<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
    result.expect_err("expected an error status").code()
}

impl Clients {
    async fn create_pipeline(&mut self, name: &str) -> pb::Pipeline {
        self.pipelines
            .create_pipeline(pb::CreatePipelineRequest {
                config: config(name),
            })
            .await
            .unwrap()
            .into_inner()
            .pipeline
            .unwrap()
    }

    async fn create_connector(
        &mut self,
        pipeline: &str,
        kind: pb::connector::Type,
    ) -> pb::Connector {
        self.connectors
            .create_connector(pb::CreateConnectorRequest {
                r#type: kind as i32,
                plugin: match kind {
                    pb::connector::Type::Source => "builtin:generator".into(),
                    _ => "builtin:log".into(),
                },
                pipeline_id: pipeline.into(),
                config: Some(pb::connector::Config {
                    name: format!("{kind:?}"),
                    settings: match kind {
                        pb::connector::Type::Source => generator_settings(),
                        _ => HashMap::new(),
                    },
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .connector
            .unwrap()
    }

    async fn create_processor(
        &mut self,
        kind: pb::processor::parent::Type,
        parent: &str,
    ) -> pb::Processor {
        self.processors
            .create_processor(pb::CreateProcessorRequest {
                parent: Some(pb::processor::Parent {
                    r#type: kind as i32,
                    id: parent.into(),
                }),
                config: Some(pb::processor::Config {
                    settings: HashMap::from([("field".into(), ".Payload.After.x".into())]),
                    workers: 0,
                }),
                condition: "{{ true }}".into(),
                plugin: "field.set".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .processor
            .unwrap()
    }

    async fn list(&mut self) -> Vec<pb::Pipeline> {
        self.pipelines
            .list_pipelines(pb::ListPipelinesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .pipelines
    }
}

/// A server on a fresh data directory, and clients of it.
struct Env {
    dir: TempDir,
    data: PathBuf,
    server: Server,
    c: Clients,
}

async fn env(args: &[&str]) -> Env {
    let (dir, data) = data_dir();
    let mut server = Server::start(&data, args);
    let c = connect(&mut server).await;
    Env {
        dir,
        data,
        server,
        c,
    }
}

use pb::processor::parent::Type as Parent;

/// A server with one pipeline ("taken"): its id, and the pipelines before any bad request.
async fn bad_input_env() -> (Env, String, Vec<pb::Pipeline>) {
    let mut e = env(&[]).await;
    let p = e.c.create_pipeline("taken").await;
    let before = e.c.list().await;
    (e, p.id, before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_are_created_got_listed_and_updated() {
    let mut e = env(&[]).await;
    let c = &mut e.c;
    let p = c.create_pipeline("orders").await;
    assert_eq!(p.config.as_ref().unwrap().name, "orders");
    let state = p.state.as_ref().unwrap();
    assert_eq!(state.status, pb::pipeline::Status::Stopped as i32);
    assert_eq!(
        state.stopped_reason,
        pb::pipeline::state::StoppedReason::User as i32
    );
    assert!(p.created_at.is_some() && p.updated_at.is_some());
    let other = c.create_pipeline("billing").await;
    let got = c
        .pipelines
        .get_pipeline(pb::GetPipelineRequest { id: p.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .pipeline
        .unwrap();
    assert_eq!(got, p);
    let filtered = c
        .pipelines
        .list_pipelines(pb::ListPipelinesRequest {
            name: "ord.*".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .pipelines;
    assert_eq!(
        filtered.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        vec![p.id.clone()]
    );
    // The filter is anchored: a substring does not match.
    let none = c
        .pipelines
        .list_pipelines(pb::ListPipelinesRequest {
            name: "rder".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .pipelines;
    assert!(none.is_empty());
    let updated = c
        .pipelines
        .update_pipeline(pb::UpdatePipelineRequest {
            id: other.id.clone(),
            config: config("billing-v2"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .pipeline
        .unwrap();
    assert_eq!(updated.config.unwrap().name, "billing-v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letter_queue_is_read_and_replaced() {
    let mut e = env(&[]).await;
    let c = &mut e.c;
    let dlq_path = e.dir.path().join("dlq.jsonl").to_str().unwrap().to_owned();
    let p = c.create_pipeline("orders").await;
    let dlq = c
        .pipelines
        .get_dlq(pb::GetDlqRequest { id: p.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .dlq
        .unwrap();
    assert_eq!(dlq.plugin, "builtin:log");
    assert_eq!(dlq.window_size, 1);
    let new_dlq = pb::pipeline::Dlq {
        plugin: "builtin:file".into(),
        settings: HashMap::from([("path".into(), dlq_path.clone())]),
        window_size: 10,
        window_nack_threshold: 3,
    };
    let answered = c
        .pipelines
        .update_dlq(pb::UpdateDlqRequest {
            id: p.id.clone(),
            dlq: Some(new_dlq.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .dlq
        .unwrap();
    assert_eq!(answered, new_dlq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_are_created_listed_updated_and_got() {
    let mut e = env(&[]).await;
    let c = &mut e.c;
    let p = c.create_pipeline("orders").await;
    let src = c.create_connector(&p.id, pb::connector::Type::Source).await;
    let dst = c
        .create_connector(&p.id, pb::connector::Type::Destination)
        .await;
    assert_eq!(src.pipeline_id, p.id);
    assert!(matches!(
        src.state,
        Some(pb::connector::State::SourceState(_))
    ));
    assert!(matches!(
        dst.state,
        Some(pb::connector::State::DestinationState(_))
    ));
    let listed = c
        .connectors
        .list_connectors(pb::ListConnectorsRequest {
            pipeline_id: p.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .connectors;
    assert_eq!(listed.len(), 2);
    let renamed = c
        .connectors
        .update_connector(pb::UpdateConnectorRequest {
            id: dst.id.clone(),
            config: Some(pb::connector::Config {
                name: "sink".into(),
                settings: HashMap::new(),
            }),
            plugin: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_eq!(renamed.config.unwrap().name, "sink");
    assert_eq!(
        renamed.plugin, "builtin:log",
        "an empty plugin keeps the old one"
    );
    let got = c
        .connectors
        .get_connector(pb::GetConnectorRequest { id: src.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_eq!(got, src);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processors_attach_to_a_connector_and_to_the_pipeline() {
    let mut e = env(&[]).await;
    let c = &mut e.c;
    let p = c.create_pipeline("orders").await;
    let src = c.create_connector(&p.id, pb::connector::Type::Source).await;
    let dst = c
        .create_connector(&p.id, pb::connector::Type::Destination)
        .await;
    let on_src = c.create_processor(Parent::Connector, &src.id).await;
    let on_pipeline = c.create_processor(Parent::Pipeline, &p.id).await;
    assert_eq!(
        on_src.config.as_ref().unwrap().workers,
        1,
        "0 workers means 1"
    );
    assert_eq!(on_pipeline.condition, "{{ true }}");
    let by_parent = c
        .processors
        .list_processors(pb::ListProcessorsRequest {
            parent_ids: vec![src.id.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .processors;
    assert_eq!(by_parent, vec![on_src.clone()]);
    let changed = c
        .processors
        .update_processor(pb::UpdateProcessorRequest {
            id: on_src.id.clone(),
            config: Some(pb::processor::Config {
                settings: HashMap::new(),
                workers: 4,
            }),
            plugin: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .processor
        .unwrap();
    assert_eq!(changed.config.unwrap().workers, 4);
    let got = c
        .processors
        .get_processor(pb::GetProcessorRequest {
            id: on_pipeline.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .processor
        .unwrap();
    assert_eq!(got, on_pipeline);
    let p_now = c
        .pipelines
        .get_pipeline(pb::GetPipelineRequest { id: p.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .pipeline
        .unwrap();
    assert_eq!(p_now.connector_ids, vec![src.id.clone(), dst.id.clone()]);
    assert_eq!(p_now.processor_ids, vec![on_pipeline.id.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_go_children_first() {
    let mut e = env(&[]).await;
    let c = &mut e.c;
    let p = c.create_pipeline("orders").await;
    let other = c.create_pipeline("billing").await;
    let src = c.create_connector(&p.id, pb::connector::Type::Source).await;
    let dst = c
        .create_connector(&p.id, pb::connector::Type::Destination)
        .await;
    let on_src = c.create_processor(Parent::Connector, &src.id).await;
    // Deletes, children first (Conduit refuses a parent with children).
    assert_eq!(
        code(
            c.pipelines
                .delete_pipeline(pb::DeletePipelineRequest {
                    id: p.id.clone(),
                    ..Default::default()
                })
                .await
        ),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(
            c.connectors
                .delete_connector(pb::DeleteConnectorRequest {
                    id: src.id.clone(),
                    ..Default::default()
                })
                .await
        ),
        Code::FailedPrecondition
    );
    c.processors
        .delete_processor(pb::DeleteProcessorRequest {
            id: on_src.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    c.connectors
        .delete_connector(pb::DeleteConnectorRequest {
            id: dst.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    c.pipelines
        .delete_pipeline(pb::DeletePipelineRequest {
            id: other.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        code(
            c.pipelines
                .get_pipeline(pb::GetPipelineRequest {
                    id: other.id.clone()
                })
                .await
        ),
        Code::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_needs_a_destination_and_valid_processors_and_a_running_pipeline_refuses_edits() {
    let mut e = env(&[]).await;
    let c = &mut e.c;
    let p = c.create_pipeline("orders").await;
    c.create_connector(&p.id, pb::connector::Type::Source).await;
    let on_pipeline = c.create_processor(Parent::Pipeline, &p.id).await;
    // Start (needs a destination again), then edits are refused while it runs.
    assert_eq!(
        code(
            c.pipelines
                .start_pipeline(pb::StartPipelineRequest { id: p.id.clone() })
                .await
        ),
        Code::FailedPrecondition
    );
    let dst = c
        .create_connector(&p.id, pb::connector::Type::Destination)
        .await;
    // Processor settings are checked when the pipeline starts (as in Conduit): this
    // `field.set` has no `value`, so the start fails naming the processor and the setting.
    let refused = c
        .pipelines
        .start_pipeline(pb::StartPipelineRequest { id: p.id.clone() })
        .await
        .expect_err("a processor without its required setting");
    assert_eq!(refused.code(), Code::Internal);
    assert!(
        refused.message().contains(&on_pipeline.id) && refused.message().contains("\"value\""),
        "{}",
        refused.message()
    );
    c.processors
        .delete_processor(pb::DeleteProcessorRequest {
            id: on_pipeline.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    c.pipelines
        .start_pipeline(pb::StartPipelineRequest { id: p.id.clone() })
        .await
        .unwrap();
    let before = c.list().await;
    assert_eq!(
        code(
            c.pipelines
                .update_pipeline(pb::UpdatePipelineRequest {
                    id: p.id.clone(),
                    config: config("x"),
                    ..Default::default()
                })
                .await
        ),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(
            c.connectors
                .delete_connector(pb::DeleteConnectorRequest {
                    id: dst.id.clone(),
                    ..Default::default()
                })
                .await
        ),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(
            c.pipelines
                .start_pipeline(pb::StartPipelineRequest { id: p.id.clone() })
                .await
        ),
        Code::FailedPrecondition
    );
    assert_eq!(c.list().await, before, "refused edits store nothing");
    c.pipelines
        .stop_pipeline(pb::StopPipelineRequest {
            id: p.id.clone(),
            force: false,
        })
        .await
        .unwrap();
    // The engine drains and reports the pipeline stopped; a second stop is then refused.
    let deadline = std::time::Instant::now() + crate::harness::DEADLINE;
    loop {
        let got = c
            .pipelines
            .get_pipeline(pb::GetPipelineRequest { id: p.id.clone() })
            .await
            .unwrap()
            .into_inner()
            .pipeline
            .unwrap();
        if got.state.unwrap().status == pb::pipeline::Status::Stopped as i32 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pipeline did not stop"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        code(
            c.pipelines
                .stop_pipeline(pb::StopPipelineRequest {
                    id: p.id.clone(),
                    force: true,
                })
                .await
        ),
        Code::FailedPrecondition
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn information_and_plugin_services_answer() {
    let mut e = env(&[]).await;
    let c = &mut e.c;
    // Information and the deprecated plugin service.
    let info = c
        .info
        .get_info(pb::GetInfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .info
        .unwrap();
    assert!(info.version.starts_with('v'));
    assert_eq!(info.os, std::env::consts::OS);
    // The deprecated PluginService still answers (Conduit keeps it for old clients).
    #[allow(deprecated)]
    let plugins = c
        .plugins
        .list_plugins(pb::ListPluginsRequest {
            name: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = plugins.plugins.iter().map(|p| p.name.as_str()).collect();
    // file, generator, kafka, log, oracle (ours), postgres, s3.
    assert_eq!(names.len(), 7, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("builtin:")), "{names:?}");
    let listed = c
        .connectors
        .list_connector_plugins(pb::ListConnectorPluginsRequest {
            name: "builtin:gen.*".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .plugins;
    assert_eq!(listed.len(), 1);
    let generator = &listed[0];
    assert!(generator.destination_params.is_empty());
    let format = &generator.source_params["format.type"];
    assert_eq!(
        format.validations.len(),
        1,
        "inclusion (not required: collections.*)"
    );
    c.connectors
        .validate_connector(pb::ValidateConnectorRequest {
            r#type: pb::connector::Type::Source as i32,
            plugin: "builtin:generator".into(),
            config: Some(pb::connector::Config {
                name: "v".into(),
                settings: generator_settings(),
            }),
        })
        .await
        .expect("valid settings validate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_restart() {
    let Env {
        mut c,
        data,
        mut server,
        dir: _dir,
    } = env(&[]).await;
    let p = c.create_pipeline("orders").await;
    let src = c.create_connector(&p.id, pb::connector::Type::Source).await;
    c.create_connector(&p.id, pb::connector::Type::Destination)
        .await;
    c.create_processor(Parent::Connector, &src.id).await;
    c.create_processor(Parent::Pipeline, &p.id).await;
    // A restart rebuilds exactly the same state from the log.
    let pipelines = c.list().await;
    let connectors = c
        .connectors
        .list_connectors(pb::ListConnectorsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let processors = c
        .processors
        .list_processors(pb::ListProcessorsRequest::default())
        .await
        .unwrap()
        .into_inner();
    drop(c);
    server.terminate();
    assert!(server.wait().success());
    let mut server = Server::start(&data, &[]);
    let mut c = connect(&mut server).await;
    assert_eq!(c.list().await, pipelines);
    assert_eq!(
        c.connectors
            .list_connectors(pb::ListConnectorsRequest::default())
            .await
            .unwrap()
            .into_inner(),
        connectors
    );
    assert_eq!(
        c.processors
            .list_processors(pb::ListProcessorsRequest::default())
            .await
            .unwrap()
            .into_inner(),
        processors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pipeline_requests_get_the_right_code_and_store_nothing() {
    let (mut e, p_id, before) = bad_input_env().await;
    let c = &mut e.c;
    let create = |name: &str| pb::CreatePipelineRequest {
        config: config(name),
    };
    assert_eq!(
        code(c.pipelines.create_pipeline(create("")).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            c.pipelines
                .create_pipeline(pb::CreatePipelineRequest { config: None })
                .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(c.pipelines.create_pipeline(create(&"n".repeat(129))).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(c.pipelines.create_pipeline(create("taken")).await),
        Code::AlreadyExists
    );
    assert_eq!(
        code(
            c.pipelines
                .get_pipeline(pb::GetPipelineRequest { id: String::new() })
                .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            c.pipelines
                .get_pipeline(pb::GetPipelineRequest { id: "nope".into() })
                .await
        ),
        Code::NotFound
    );
    assert_eq!(
        code(
            c.pipelines
                .delete_pipeline(pb::DeletePipelineRequest {
                    id: String::new(),
                    ..Default::default()
                })
                .await
        ),
        Code::NotFound
    );
    assert_eq!(
        code(
            c.pipelines
                .stop_pipeline(pb::StopPipelineRequest {
                    id: p_id.clone(),
                    force: false
                })
                .await
        ),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(
            c.pipelines
                .update_dlq(pb::UpdateDlqRequest {
                    id: p_id.clone(),
                    dlq: None,
                    ..Default::default()
                })
                .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            c.pipelines
                .list_pipelines(pb::ListPipelinesRequest { name: "(".into() })
                .await
        ),
        Code::Internal,
        "Conduit answers an invalid name regex with INTERNAL"
    );
    // An import of a pipeline that exists (ids are kept on import).
    let exported = c
        .pipelines
        .export_pipeline(pb::ExportPipelineRequest { id: p_id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        code(
            c.pipelines
                .import_pipeline(pb::ImportPipelineRequest {
                    pipeline: exported.pipeline,
                    connectors: exported.connectors,
                    processors: exported.processors,
                    dlq: exported.dlq,
                })
                .await
        ),
        Code::AlreadyExists
    );
    assert_eq!(
        c.list().await,
        before,
        "nothing stored by any refused request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_processor_requests_get_the_right_code_and_store_nothing() {
    let (mut e, p_id, before) = bad_input_env().await;
    let c = &mut e.c;
    assert_eq!(
        code(
            c.processors
                .create_processor(pb::CreateProcessorRequest {
                    parent: Some(pb::processor::Parent {
                        r#type: 0,
                        id: p_id.clone()
                    }),
                    plugin: "field.set".into(),
                    ..Default::default()
                })
                .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            c.processors
                .create_processor(pb::CreateProcessorRequest {
                    parent: Some(pb::processor::Parent {
                        r#type: pb::processor::parent::Type::Pipeline as i32,
                        id: p_id.clone(),
                    }),
                    config: Some(pb::processor::Config {
                        settings: HashMap::new(),
                        workers: -1
                    }),
                    plugin: "field.set".into(),
                    ..Default::default()
                })
                .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            c.processors
                .get_processor(pb::GetProcessorRequest { id: "nope".into() })
                .await
        ),
        Code::NotFound
    );
    assert_eq!(
        c.list().await,
        before,
        "nothing stored by any refused request"
    );
    assert!(c
        .processors
        .list_processors(pb::ListProcessorsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .processors
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_connector_requests_get_the_right_code_and_store_nothing() {
    let (mut e, p_id, before) = bad_input_env().await;
    let c = &mut e.c;
    for kind in [0, 7] {
        assert_eq!(
            code(
                c.connectors
                    .create_connector(pb::CreateConnectorRequest {
                        r#type: kind,
                        plugin: "builtin:log".into(),
                        pipeline_id: p_id.clone(),
                        config: Some(pb::connector::Config {
                            name: "c".into(),
                            settings: HashMap::new()
                        }),
                    })
                    .await
            ),
            Code::InvalidArgument,
            "connector type {kind}"
        );
    }
    assert_eq!(
        code(
            c.connectors
                .create_connector(pb::CreateConnectorRequest {
                    r#type: pb::connector::Type::Source as i32,
                    plugin: "builtin:generator".into(),
                    pipeline_id: "missing".into(),
                    config: Some(pb::connector::Config {
                        name: "c".into(),
                        settings: generator_settings()
                    }),
                })
                .await
        ),
        Code::NotFound
    );
    assert_eq!(
        code(
            c.connectors
                .create_connector(pb::CreateConnectorRequest {
                    r#type: pb::connector::Type::Source as i32,
                    plugin: String::new(),
                    pipeline_id: p_id.clone(),
                    config: Some(pb::connector::Config {
                        name: "c".into(),
                        settings: HashMap::new()
                    }),
                })
                .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            c.connectors
                .get_connector(pb::GetConnectorRequest { id: "nope".into() })
                .await
        ),
        Code::NotFound
    );
    assert_eq!(
        code(
            c.connectors
                .validate_connector(pb::ValidateConnectorRequest::default())
                .await
        ),
        Code::InvalidArgument,
        "no connector type"
    );
    // Plugins: unknown ones, a missing side, and settings their specification refuses.
    let connector = |plugin: &str, kind: pb::connector::Type, settings: &[(&str, &str)]| {
        pb::CreateConnectorRequest {
            r#type: kind as i32,
            plugin: plugin.into(),
            pipeline_id: p_id.clone(),
            config: Some(pb::connector::Config {
                name: "c".into(),
                settings: settings
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            }),
        }
    };
    use pb::connector::Type::{Destination, Source};
    assert_eq!(
        code(
            c.connectors
                .create_connector(connector("builtin:mysql", Source, &[]))
                .await
        ),
        Code::NotFound
    );
    assert_eq!(
        code(
            c.connectors
                .create_connector(connector("builtin:log", Source, &[]))
                .await
        ),
        Code::InvalidArgument
    );
    let refused = c
        .connectors
        .create_connector(connector("builtin:generator", Source, &[("rate", "fast")]))
        .await
        .expect_err("bad settings");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("\"rate\""),
        "{}",
        refused.message()
    );
    // Settings the specification allows but the plugin refuses (no collection at all).
    let refused = c
        .connectors
        .create_connector(connector("builtin:generator", Source, &[("rate", "5")]))
        .await
        .expect_err("no format");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("\"format.type\"")
            && refused.message().contains("at least one collection"),
        "{}",
        refused.message()
    );
    assert_eq!(
        code(
            c.connectors
                .create_connector(connector("builtin:file", Destination, &[("colour", "x")]))
                .await
        ),
        Code::FailedPrecondition
    );
    assert_eq!(
        c.list().await,
        before,
        "nothing stored by any refused request"
    );
    assert!(c
        .connectors
        .list_connectors(pb::ListConnectorsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .connectors
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_is_resource_exhausted_and_the_server_goes_on() {
    let mut e = env(&[]).await;
    let c = &mut e.c;
    let before = c.list().await;
    // 10 MB, over the default limit of 4 MiB.
    let huge = pb::CreatePipelineRequest {
        config: Some(pb::pipeline::Config {
            name: "huge".into(),
            description: "x".repeat(10 * 1024 * 1024),
        }),
    };
    let refused = c
        .pipelines
        .create_pipeline(huge)
        .await
        .expect_err("a 10 MB request");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("4194304") && refused.message().contains("--api.grpc"),
        "{}",
        refused.message()
    );
    // The same connection goes on working, and nothing was stored.
    assert_eq!(c.list().await, before);
    c.create_pipeline("small").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_size_limit_is_a_flag() {
    let mut e = env(&["--api.grpc.max-message-bytes", "2048"]).await;
    let c = &mut e.c;
    let request = |size: usize| pb::CreatePipelineRequest {
        config: Some(pb::pipeline::Config {
            name: format!("p{size}"),
            description: "x".repeat(size),
        }),
    };
    c.pipelines.create_pipeline(request(1000)).await.unwrap();
    let refused = c
        .pipelines
        .create_pipeline(request(4000))
        .await
        .expect_err("over the limit");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("2048"), "{}", refused.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_service_answers_like_conduits() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let (_dir, data) = data_dir();
    let mut server = Server::start(&data, &[]);
    let mut health = HealthClient::new(channel(&mut server).await);
    for service in [
        "",
        "PipelineService",
        "ConnectorService",
        "ProcessorPluginService",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "Nope".into(),
        })
        .await;
    assert_eq!(code(unknown), Code::NotFound);
}

/// Server reflection, as Conduit registers it: `grpcurl list` and `describe` work without
/// the .proto files (v1 and v1alpha, every service, each file with its imports).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_and_describes_every_service() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let (_dir, data) = data_dir();
    let mut server = Server::start(&data, &[]);
    let mut reflection = ServerReflectionClient::new(channel(&mut server).await);
    let ask = |request: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let requests = vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "api.v1.PipelineService".into(),
        )),
        ask(MessageRequest::FileByFilename(
            "google/protobuf/timestamp.proto".into(),
        )),
        ask(MessageRequest::FileContainingSymbol("api.v1.Nope".into())),
    ];
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    async fn next(
        answers: &mut tonic::Streaming<tonic_reflection::pb::v1::ServerReflectionResponse>,
    ) -> Option<MessageResponse> {
        answers.message().await.unwrap().unwrap().message_response
    }
    let Some(MessageResponse::ListServicesResponse(list)) = next(&mut answers).await else {
        panic!("a list of services")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for wanted in [
        "api.v1.PipelineService",
        "api.v1.ConnectorService",
        "api.v1.ProcessorService",
        "api.v1.PluginService",
        "api.v1.InformationService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
    }
    let Some(MessageResponse::FileDescriptorResponse(files)) = next(&mut answers).await else {
        panic!("the file declaring PipelineService")
    };
    // Encoded FileDescriptorProtos: the service's name is in one of them as written, and
    // so are the files it imports (google/protobuf's among them), asked for below.
    let holds = |text: &[u8]| {
        files
            .file_descriptor_proto
            .iter()
            .any(|file| file.windows(text.len()).any(|w| w == text))
    };
    assert!(holds(b"PipelineService"));
    assert!(holds(b"google/protobuf/timestamp.proto"));
    // An imported file is there too, so a client can resolve every message.
    let Some(MessageResponse::FileDescriptorResponse(imported)) = next(&mut answers).await else {
        panic!("the imported file")
    };
    assert_eq!(imported.file_descriptor_proto.len(), 1);
    // An unknown symbol: NOT_FOUND (tonic's reflection ends the stream with it).
    let unknown = answers.message().await.expect_err("an unknown symbol");
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
}

/// Every answer names its call: the caller's `x-request-id`, or a new one (Conduit's
/// interceptor does the same).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_carry_the_request_id() {
    let (_dir, data) = data_dir();
    let mut server = Server::start(&data, &[]);
    let channel = channel(&mut server).await;
    let mut info = InformationServiceClient::new(channel.clone());
    let mut request = tonic::Request::new(pb::GetInfoRequest {});
    request
        .metadata_mut()
        .insert("x-request-id", "req-42".parse().unwrap());
    let answer = info.get_info(request).await.unwrap();
    assert_eq!(answer.metadata().get("x-request-id").unwrap(), "req-42");
    let answer = info.get_info(pb::GetInfoRequest {}).await.unwrap();
    let made_up = answer.metadata().get("x-request-id").unwrap();
    assert_eq!(made_up.len(), 36, "a UUID: {made_up:?}");
    // Refusals too.
    let mut request = tonic::Request::new(pb::GetPipelineRequest { id: "nope".into() });
    request
        .metadata_mut()
        .insert("x-request-id", "req-43".parse().unwrap());
    let refused = PipelineServiceClient::new(channel)
        .get_pipeline(request)
        .await
        .expect_err("no such pipeline");
    assert_eq!(refused.metadata().get("x-request-id").unwrap(), "req-43");
}
