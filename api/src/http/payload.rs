//! `ProtoJson<T>`: a protobuf message as a poem-openapi JSON body, read and written as
//! protojson (pbjson's serde impls), described by the descriptor-derived schemas.

use super::schema;
use super::ApiError;
use crate::export::PipelineExport;
use crate::pb;
use poem::{Request, RequestBody, Response};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaResponse, MetaResponses};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A type whose JSON form the OpenAPI document can describe.
pub(crate) trait Described {
    /// A reference to (or, for containers, an inline) schema.
    fn schema_ref() -> MetaSchemaRef;
    /// Add the schemas this type refers to.
    fn register(registry: &mut Registry);
}

macro_rules! described {
    ($($ty:ty => $name:literal,)*) => {
        $(
            impl Described for $ty {
                fn schema_ref() -> MetaSchemaRef {
                    MetaSchemaRef::Reference($name.to_owned())
                }
                fn register(registry: &mut Registry) {
                    schema::message_ref(registry, $name);
                }
            }
        )*
    };
}

use pb::api::v1;
described! {
    v1::Pipeline => "api.v1.Pipeline",
    v1::pipeline::Dlq => "api.v1.Pipeline.DLQ",
    v1::Connector => "api.v1.Connector",
    v1::Processor => "api.v1.Processor",
    v1::Info => "api.v1.Info",
    v1::ConnectorPluginSpecifications => "api.v1.ConnectorPluginSpecifications",
    v1::ProcessorPluginSpecifications => "api.v1.ProcessorPluginSpecifications",
    v1::PluginSpecifications => "api.v1.PluginSpecifications",
    v1::Diff => "api.v1.Diff",
    v1::CreatePipelineRequest => "api.v1.CreatePipelineRequest",
    v1::UpdatePipelineRequest => "api.v1.UpdatePipelineRequest",
    v1::StopPipelineRequest => "api.v1.StopPipelineRequest",
    v1::PlanPipelineRequest => "api.v1.PlanPipelineRequest",
    v1::ApplyPipelineRequest => "api.v1.ApplyPipelineRequest",
    v1::CreateConnectorRequest => "api.v1.CreateConnectorRequest",
    v1::ValidateConnectorRequest => "api.v1.ValidateConnectorRequest",
    v1::UpdateConnectorRequest => "api.v1.UpdateConnectorRequest",
    v1::CreateProcessorRequest => "api.v1.CreateProcessorRequest",
    v1::UpdateProcessorRequest => "api.v1.UpdateProcessorRequest",
    v1::DeletePipelineResponse => "api.v1.DeletePipelineResponse",
    v1::StartPipelineResponse => "api.v1.StartPipelineResponse",
    v1::StopPipelineResponse => "api.v1.StopPipelineResponse",
    v1::DeleteConnectorResponse => "api.v1.DeleteConnectorResponse",
    v1::ValidateConnectorResponse => "api.v1.ValidateConnectorResponse",
    v1::DeleteProcessorResponse => "api.v1.DeleteProcessorResponse",
    pb::opencdc::v1::Record => "opencdc.v1.Record",
    pb::culvert::api::v1::Event => "culvert.api.v1.Event",
    pb::culvert::api::v1::ListEventsResponse => "culvert.api.v1.ListEventsResponse",
    pb::culvert::api::v1::GetAtResponse => "culvert.api.v1.GetAtResponse",
    pb::culvert::api::v1::DiffResponse => "culvert.api.v1.DiffResponse",
    pb::culvert::api::v1::RevertRequest => "culvert.api.v1.RevertRequest",
    pb::culvert::api::v1::RevertResponse => "culvert.api.v1.RevertResponse",
    pb::culvert::api::v1::SourcePosition => "culvert.api.v1.SourcePosition",
    pb::culvert::api::v1::SetSourcePositionRequest => "culvert.api.v1.SetSourcePositionRequest",
    pb::culvert::api::v1::SetSourcePositionResponse => "culvert.api.v1.SetSourcePositionResponse",
    pb::culvert::api::v1::DeadLetter => "culvert.api.v1.DeadLetter",
    pb::culvert::api::v1::ListDeadLettersResponse => "culvert.api.v1.ListDeadLettersResponse",
    pb::culvert::api::v1::ReinjectDeadLettersRequest => "culvert.api.v1.ReinjectDeadLettersRequest",
    pb::culvert::api::v1::ReinjectDeadLettersResponse => "culvert.api.v1.ReinjectDeadLettersResponse",
}

impl Described for PipelineExport {
    fn schema_ref() -> MetaSchemaRef {
        let mut extra = MetaSchema::new("object");
        extra.properties = vec![
            ("connectors", <Vec<v1::Connector>>::schema_ref()),
            ("processors", <Vec<v1::Processor>>::schema_ref()),
            ("dlq", v1::pipeline::Dlq::schema_ref()),
        ];
        let mut schema = MetaSchema::ANY;
        schema.all_of = vec![
            v1::Pipeline::schema_ref(),
            MetaSchemaRef::Inline(Box::new(extra)),
        ];
        MetaSchemaRef::Inline(Box::new(schema))
    }
    fn register(registry: &mut Registry) {
        v1::Pipeline::register(registry);
        v1::Connector::register(registry);
        v1::Processor::register(registry);
        v1::pipeline::Dlq::register(registry);
    }
}

impl<T: Described> Described for Vec<T> {
    fn schema_ref() -> MetaSchemaRef {
        let mut array = MetaSchema::new("array");
        array.items = Some(Box::new(T::schema_ref()));
        MetaSchemaRef::Inline(Box::new(array))
    }
    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// A protobuf message carried as protojson.
pub(crate) struct ProtoJson<T>(pub T);

/// grpc-gateway's marshaler is picked by content type and falls back to JSON, so a body
/// without a `Content-Type` (as `curl -d` sends) is read as JSON too.
const CONTENT_TYPE: &str = "application/json";

impl<T: Described + Send> poem_openapi::payload::Payload for ProtoJson<T> {
    const CONTENT_TYPE: &'static str = CONTENT_TYPE;

    fn check_content_type(_content_type: &str) -> bool {
        true
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Serialize + Send> poem::IntoResponse for ProtoJson<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => Response::builder().content_type(CONTENT_TYPE).body(body),
            Err(e) => poem::IntoResponse::into_response(ApiError::internal(format!(
                "encoding the response as JSON failed: {e}"
            ))),
        }
    }
}

impl<T: Described + Serialize + Send> ApiResponse for ProtoJson<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "A successful response.",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: CONTENT_TYPE,
                    schema: T::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<'a, T> ApiExtractor<'a> for ProtoJson<T>
where
    T: Described + DeserializeOwned + Default + Send,
{
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: CONTENT_TYPE,
                schema: T::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        _request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let bytes = body
            .take()?
            .into_bytes()
            .await
            .map_err(|e| ApiError::invalid_body(&format!("reading the body failed: {e}")))?;
        // grpc-gateway reads an empty body as an empty message.
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|e| ApiError::invalid_body(&e.to_string()).into())
    }
}

/// An entity whose answer carries its version as an HTTP `ETag`.
pub(crate) trait Versioned {
    /// The entity's version (its event stream's).
    fn version(&self) -> u64;
}

impl Versioned for pb::api::v1::Pipeline {
    fn version(&self) -> u64 {
        self.version
    }
}

impl Versioned for pb::api::v1::Connector {
    fn version(&self) -> u64 {
        self.version
    }
}

impl Versioned for pb::api::v1::Processor {
    fn version(&self) -> u64 {
        self.version
    }
}

/// A single entity as protojson with its version as a strong `ETag` (`"12"`), for a client's
/// `If-Match` on its next update or delete.
pub(crate) struct Tagged<T>(pub T);

impl<T: Serialize + Versioned + Send> poem::IntoResponse for Tagged<T> {
    fn into_response(self) -> Response {
        let etag = format!("\"{}\"", self.0.version());
        let mut response = ProtoJson(self.0).into_response();
        if let Ok(value) = poem::http::HeaderValue::from_str(&etag) {
            response
                .headers_mut()
                .insert(poem::http::header::ETAG, value);
        }
        response
    }
}

impl<T: Described + Serialize + Versioned + Send> ApiResponse for Tagged<T> {
    fn meta() -> MetaResponses {
        let mut meta = ProtoJson::<T>::meta();
        for response in &mut meta.responses {
            response.headers.push(poem_openapi::registry::MetaHeader {
                name: "ETag".to_owned(),
                description: Some(
                    "The entity's version, quoted; send it as If-Match to change it only if \
                     nobody else did."
                        .to_owned(),
                ),
                required: true,
                deprecated: false,
                schema: <String as poem_openapi::types::Type>::schema_ref(),
            });
        }
        meta
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

#[cfg(test)]
mod tests {
    use crate::pb::api::v1 as conduit;

    /// Fuzz finding (target `api_bodies`): a processor-create body with two settings. It
    /// re-encodes to JSON that decodes to the same message; the JSON text may differ in
    /// the order of the settings' keys (prost maps are `HashMap`s, and protojson leaves map
    /// order unspecified), so JSON is compared as values, not as text.
    #[test]
    fn processor_create_body_round_trips() {
        let body = br#"{"plugin": "field.set", "parent": {"type": "TYPE_PIPELINE", "id": "p1"}, "config": {"settings": {"field": ".Payload.After.x", "value": "1"}, "workers": 1}, "condition": "{{ true }}"}"#;
        let value: conduit::CreateProcessorRequest = serde_json::from_slice(body).unwrap();
        let config = value.config.as_ref().unwrap();
        assert_eq!(config.workers, 1);
        assert_eq!(config.settings["value"], "1");
        let json = serde_json::to_string(&value).unwrap();
        let again: conduit::CreateProcessorRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(again, value);
        let json_again = serde_json::to_string(&again).unwrap();
        let as_value = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
        assert_eq!(as_value(&json_again), as_value(&json));
        assert_eq!(as_value(&json)["config"]["workers"], 1);
    }
}
