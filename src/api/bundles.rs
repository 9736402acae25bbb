//! `/v1/workflows/export` and `/v1/workflows/import` (SecMaster's export/import): bundles of
//! workflows and their plugins as one file. The format lives in [`crate::bundle`].

use super::auth::Caller;
use super::error::ApiError;
use super::extract::QueryParams;
use super::AppState;
use crate::auth::Action;
use crate::bundle::{self, Bundle, ImportError, Imported};
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ExportRequest {
    /// The workflow ids to export (SecMaster's body: `{"id": ["..."]}`).
    id: Vec<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Also carry the plugins' bytes, so the bundle imports where they are missing.
    #[serde(default)]
    include_plugins: bool,
}

/// Exports workflows, every version, and the plugins they name, as one JSON file.
#[utoipa::path(post, path = "/v1/workflows/export", tag = "workflows", operation_id = "Workflows.Export",
    extensions(("x-weft-actions" = json!(true))), params(ExportQuery),
    request_body = ExportRequest,
    responses((status = 200, description = "The bundle, as a file", body = Bundle,
            headers(("Content-Disposition" = String, description = "attachment; filename=..."))),
        (status = 400, description = "A bad body", body = super::error::ErrorBody),
        (status = 404, description = "An id is unknown", body = super::error::ErrorBody),
        (status = 415, description = "Not JSON", body = super::error::ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ExportQuery>,
    caller: Caller,
    super::extract::JsonBody(request): super::extract::JsonBody<ExportRequest>,
) -> Result<Response, ApiError> {
    caller.require(Action::ReadWorkflows)?;
    for id in &request.id {
        if state.engine.workflow_versions(id).await?.is_empty() {
            return Err(ApiError::not_found(format!("no workflow {id}")));
        }
    }
    let bundle = bundle::export(&state.engine, &request.id, query.include_plugins).await?;
    let name = match request.id.as_slice() {
        [one] => one.clone(),
        _ => "workflows".to_owned(),
    };
    let disposition = format!("attachment; filename=\"{name}.weft-bundle.json\"");
    Ok(([(header::CONTENT_DISPOSITION, disposition)], Json(bundle)).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// `OLD:NEW` to import workflow OLD as NEW; repeat as `rename=a:b,c:d`.
    rename: Option<String>,
}

/// Imports a bundle: the raw file, or multipart with the file in `uploadFile` (SecMaster).
/// Everything is checked before anything is written; importing twice changes nothing.
#[utoipa::path(post, path = "/v1/workflows/import", tag = "workflows", operation_id = "Workflows.Import",
    extensions(("x-weft-actions" = json!(true))), params(ImportQuery),
    request_body(description = "A bundle, raw or as multipart `uploadFile`",
        content((Bundle = "application/json"), (ImportForm = "multipart/form-data"))),
    responses((status = 200, description = "Imported", body = Imported),
        (status = 400, description = "Not a valid bundle, or something in it is invalid", body = super::error::ErrorBody),
        (status = 409, description = "Versions exist here with other content", body = super::error::ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ImportQuery>,
    caller: Caller,
    request: Request,
) -> Result<Json<Imported>, ApiError> {
    caller.require(Action::WriteWorkflows)?;
    caller.require(Action::WritePlugins)?;
    let rename = parse_rename(query.rename.as_deref())?;
    let bytes = bundle_bytes(request, &state).await?;
    let bundle = bundle::parse(&bytes).map_err(import_error)?;
    let imported = bundle::import(&state.engine, bundle, &rename)
        .await
        .map_err(import_error)?;
    Ok(Json(imported))
}

/// SecMaster's multipart import: the bundle file in `uploadFile`.
#[derive(utoipa::ToSchema)]
pub struct ImportForm {
    #[schema(rename = "uploadFile", value_type = String, format = Binary)]
    upload_file: Vec<u8>,
}

/// `a:b,c:d` as a map of old ids to new ones.
pub fn parse_rename(text: Option<&str>) -> Result<HashMap<String, String>, ApiError> {
    text.into_iter()
        .flat_map(|t| t.split(','))
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            pair.split_once(':')
                .map(|(a, b)| (a.trim().to_owned(), b.trim().to_owned()))
                .ok_or_else(|| ApiError::bad_request(format!("rename {pair:?}: expected OLD:NEW")))
        })
        .collect()
}

async fn bundle_bytes(request: Request, state: &AppState) -> Result<Vec<u8>, ApiError> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !multipart {
        let body = axum::body::Bytes::from_request(request, state).await?;
        return Ok(body.to_vec());
    }
    let mut form = Multipart::from_request(request, state)
        .await
        .map_err(|e| ApiError::bad_request(format!("invalid multipart body: {}", e.body_text())))?;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("invalid multipart body: {}", e.body_text())))?
    {
        if field.name() == Some("uploadFile") {
            let bytes = field
                .bytes()
                .await
                .map_err(|e| ApiError::bad_request(format!("cannot read uploadFile: {}", e.body_text())))?;
            let form = ImportForm {
                upload_file: bytes.to_vec(),
            };
            return Ok(form.upload_file);
        }
    }
    Err(ApiError::bad_request(
        "the multipart body has no `uploadFile` field",
    ))
}

fn import_error(error: ImportError) -> ApiError {
    match error {
        ImportError::Invalid(message) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_bundle", message),
        ImportError::Conflict(list) => {
            let mut e = ApiError::conflict(format!("nothing was imported; conflicts: {}", list.join("; ")));
            e.problems = Some(crate::workflow::Problems(
                list.into_iter()
                    .map(|message| crate::workflow::Problem {
                        path: String::new(),
                        message,
                    })
                    .collect(),
            ));
            e
        }
        ImportError::Internal(e) => ApiError::internal(e),
    }
}
