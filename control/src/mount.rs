//! Mounts the admin UI and API at `server.adminPath` of the current config, read on every
//! request, so a changed admin path applies without a restart: `<adminPath>/x` is routed as
//! `/x`, `<adminPath>` redirects to `<adminPath>/`, and every other path is not found.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Uri, header};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError as _, web};

use crate::api::AppState;
use crate::errors::AdminError;

pub async fn admin_path(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let admin_path = match req.app_data::<web::Data<AppState>>() {
        Some(state) => state.store.last_good().server.admin_path.to_string(),
        None => "/admin".to_string(),
    };
    let path = req.path().to_string();
    let query = req.query_string().to_string();
    let with_query = |path: &str| {
        if query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{query}")
        }
    };
    if path == admin_path {
        let response = HttpResponse::PermanentRedirect()
            .insert_header((header::LOCATION, with_query(&format!("{admin_path}/"))))
            .finish();
        return Ok(req.into_response(response).map_into_right_body());
    }
    let Some(inner) = path
        .strip_prefix(admin_path.as_str())
        .filter(|rest| rest.starts_with('/'))
    else {
        let err = AdminError::NotFound(format!("the admin UI is at {admin_path}/"));
        return Ok(req
            .into_response(err.error_response())
            .map_into_right_body());
    };
    let rewritten = with_query(inner);
    let Ok(uri) = rewritten.parse::<Uri>() else {
        let err = AdminError::BadRequest("unreadable path".into());
        return Ok(req
            .into_response(err.error_response())
            .map_into_right_body());
    };
    req.match_info_mut().get_mut().update(&uri);
    req.head_mut().uri = uri;
    Ok(next.call(req).await?.map_into_left_body())
}
