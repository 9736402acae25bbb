//! `/v1/schedules`: workflows that start by themselves, on a cron expression or an interval.

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{JsonBody, PathParams};
use super::AppState;
use crate::auth::Action;
use crate::engine::ScheduleError;
use crate::schedule::{ScheduleDefinition, ScheduleRecord, ScheduleView};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

impl From<ScheduleError> for ApiError {
    fn from(error: ScheduleError) -> Self {
        match error {
            ScheduleError::Invalid(problems) => ApiError::invalid("invalid_schedule", problems),
            ScheduleError::NotFound(message) => ApiError::not_found(message),
            ScheduleError::Conflict(message) => ApiError::conflict(message),
            ScheduleError::Internal(e) => ApiError::internal(e),
        }
    }
}

/// Creates a schedule.
#[utoipa::path(post, path = "/v1/schedules", tag = "schedules", operation_id = "Schedules.Create",
    extensions(("x-weft-actions" = json!(true))),
    request_body(content = ScheduleDefinition, content_type = "application/json"),
    responses((status = 201, description = "The schedule with its next fire times", body = ScheduleView),
        (status = 400, description = "Every problem with its field", body = super::error::ErrorBody),
        (status = 415, description = "Not JSON", body = super::error::ErrorBody),
        (status = 409, description = "The id is taken, or too many schedules", body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(definition): JsonBody<ScheduleDefinition>,
) -> Result<(StatusCode, Json<ScheduleView>), ApiError> {
    caller.require(Action::ManageSchedules)?;
    let record = state.engine.create_schedule(definition, &caller.0.name).await?;
    Ok((StatusCode::CREATED, Json(record.shown())))
}

/// Every schedule.
#[utoipa::path(get, path = "/v1/schedules", tag = "schedules", operation_id = "Schedules.List",
    extensions(("x-weft-actions" = json!(true))),
    responses((status = 200, description = "Schedules with their next fire times", body = ScheduleList)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<ScheduleList>, ApiError> {
    caller.require(Action::ReadSchedules)?;
    let items = state
        .engine
        .schedules()
        .await?
        .iter()
        .map(ScheduleRecord::shown)
        .collect();
    Ok(Json(ScheduleList { items }))
}

/// Every schedule.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ScheduleList {
    items: Vec<ScheduleView>,
}

/// One schedule.
#[utoipa::path(get, path = "/v1/schedules/{id}", tag = "schedules", operation_id = "Schedules.Get",
    extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Schedule id")),
    responses((status = 200, description = "The schedule with its next fire times", body = ScheduleView),
        (status = 404, description = "No such schedule", body = super::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    caller.require(Action::ReadSchedules)?;
    Ok(Json(state.engine.schedule(&id).await?.shown()))
}

/// Pauses a schedule: it fires no more until resumed.
#[utoipa::path(post, path = "/v1/schedules/{id}/pause", tag = "schedules", operation_id = "Schedules.Pause",
    extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Schedule id")),
    responses((status = 200, description = "The paused schedule", body = ScheduleView),
        (status = 404, description = "No such schedule", body = super::error::ErrorBody)))]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    caller.require(Action::ManageSchedules)?;
    Ok(Json(state.engine.pause_schedule(&id, true).await?.shown()))
}

/// Resumes a schedule from now; fires missed while it was paused are not made up.
#[utoipa::path(post, path = "/v1/schedules/{id}/resume", tag = "schedules", operation_id = "Schedules.Resume",
    extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Schedule id")),
    responses((status = 200, description = "The resumed schedule", body = ScheduleView),
        (status = 404, description = "No such schedule", body = super::error::ErrorBody)))]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    caller.require(Action::ManageSchedules)?;
    Ok(Json(state.engine.pause_schedule(&id, false).await?.shown()))
}

/// Deletes a schedule; runs it started stay.
#[utoipa::path(delete, path = "/v1/schedules/{id}", tag = "schedules", operation_id = "Schedules.Delete",
    extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Schedule id")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such schedule", body = super::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::ManageSchedules)?;
    state.engine.delete_schedule(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
