//! Request bodies of the admin API, read up to the limit in force for the resource (`BodyLimit`
//! app data: the config limit on the whole scope, a larger one on the endpoint tester). A larger
//! body is refused with 413 in the OpenAI error shape as soon as its declared or received length
//! passes the limit, so no more than the limit is ever buffered.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{FromRequest, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;

use super::CONFIG_BODY_LIMIT;
use crate::errors::AdminError;

/// The largest body a resource accepts.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The whole request body, at most `BodyLimit` bytes.
pub struct Body(pub Bytes);

impl FromRequest for Body {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Body, AdminError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<BodyLimit>()
            .map_or(CONFIG_BODY_LIMIT, |l| l.0);
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|length| length > limit) {
                return Err(AdminError::PayloadTooLarge { limit });
            }
            let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    AdminError::BadRequest(format!("could not read the request body: {e}"))
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(AdminError::PayloadTooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Body(body.freeze()))
        })
    }
}
