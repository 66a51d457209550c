//! The two token protocols as App Service and Microsoft Entra ID speak them: routing, parsing a
//! managed identity query and a client credentials form, the checks in the service's order, and
//! the JSON bodies of tokens and errors. Plain inputs and outputs, no actix types; an answer never
//! echoes a client secret or an assertion.

use std::borrow::Cow;

use serde_json::json;

use super::ledger;
use super::state::{Credential, EntraState, Refusal, TokenFlow, TokenRequest};
use crate::ids;

/// Path of the App Service managed identity endpoint on the plain HTTP listener.
pub const MI_PATH: &str = "/msi/token";
/// The only `api-version` of the App Service protocol the fake speaks (the one
/// `azure_identity` sends).
pub const MI_API_VERSION: &str = "2019-08-01";
/// `client_assertion_type` of a federated (workload identity) client assertion.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Subject of tokens issued to the system-assigned managed identity; user-assigned ones get
/// `managed-identity:<id>`.
pub const MI_SUBJECT: &str = "managed-identity";
const TOKEN_PATH_SUFFIX: &str = "/oauth2/v2.0/token";
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
/// Query parameters naming a user-assigned identity, in the order they are looked at.
const MI_ID_PARAMS: [&str; 5] = [
    "client_id",
    "object_id",
    "principal_id",
    "mi_res_id",
    "msi_res_id",
];

/// A form body or query string, decoded.
#[derive(Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(encoded: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(encoded).into_owned().collect())
    }

    /// The first value of `name`, when present and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// A token request, parsed and not yet judged.
#[derive(Debug)]
pub enum Incoming {
    /// `GET /msi/token?api-version=…&resource=…` on the plain listener.
    ManagedIdentity {
        is_get: bool,
        query: Form,
        /// Whether `X-IDENTITY-HEADER` carried the fake's secret.
        header_ok: bool,
    },
    /// `POST /{tenant}/oauth2/v2.0/token` on the HTTPS listener.
    ClientCredentials {
        tenant_id: String,
        is_post: bool,
        form: Form,
    },
}

/// What the HTTP layer hands over about a request.
pub struct RawRequest<'a> {
    /// Whether it came in on the HTTPS listener.
    pub secure: bool,
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    pub identity_header: Option<&'a [u8]>,
    pub body: &'a [u8],
}

/// The token request `raw` is, or `None` for any other path (a 404).
pub fn incoming(raw: &RawRequest<'_>, identity_header: &str) -> Option<Incoming> {
    if !raw.secure {
        return (raw.path == MI_PATH).then(|| Incoming::ManagedIdentity {
            is_get: raw.method == "GET",
            query: Form::parse(raw.query.as_bytes()),
            header_ok: raw.identity_header == Some(identity_header.as_bytes()),
        });
    }
    let tenant_id = raw
        .path
        .strip_prefix('/')?
        .strip_suffix(TOKEN_PATH_SUFFIX)?;
    if tenant_id.is_empty() || tenant_id.contains('/') {
        return None;
    }
    let is_form = raw.content_type.is_some_and(|ct| {
        ct.get(..FORM_CONTENT_TYPE.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(FORM_CONTENT_TYPE))
    });
    Some(Incoming::ClientCredentials {
        tenant_id: tenant_id.to_owned(),
        is_post: raw.method == "POST",
        // Entra reads only form bodies; anything else is as good as empty.
        form: if is_form {
            Form::parse(raw.body)
        } else {
            Form::default()
        },
    })
}

impl Incoming {
    /// The client id a request names, if any.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Incoming::ManagedIdentity { query, .. } => mi_user_assigned(query),
            Incoming::ClientCredentials { form, .. } => form.get("client_id"),
        }
    }

    /// The subject a token for this request would carry, when the request says who it is.
    pub fn subject(&self) -> Option<Cow<'_, str>> {
        match self {
            Incoming::ManagedIdentity { query, .. } => Some(mi_subject(query)),
            Incoming::ClientCredentials { form, .. } => form.get("client_id").map(Cow::Borrowed),
        }
    }

    fn flow(&self) -> TokenFlow {
        match self {
            Incoming::ManagedIdentity { .. } => TokenFlow::ManagedIdentity,
            Incoming::ClientCredentials { form, .. } if form.get("client_secret").is_some() => {
                TokenFlow::ClientSecret
            }
            Incoming::ClientCredentials { form, .. } if form.get("client_assertion").is_some() => {
                TokenFlow::ClientAssertion
            }
            Incoming::ClientCredentials { .. } => TokenFlow::Other,
        }
    }

    fn resource(&self) -> Option<&str> {
        match self {
            Incoming::ManagedIdentity { query, .. } => query.get("resource"),
            Incoming::ClientCredentials { form, .. } => form.get("scope"),
        }
    }
}

fn mi_user_assigned(query: &Form) -> Option<&str> {
    MI_ID_PARAMS.iter().find_map(|name| query.get(name))
}

fn mi_subject(query: &Form) -> Cow<'static, str> {
    match mi_user_assigned(query) {
        Some(id) => Cow::Owned(format!("{MI_SUBJECT}:{id}")),
        None => Cow::Borrowed(MI_SUBJECT),
    }
}

/// A status and a JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// The reply to a token request and what to log about it.
#[derive(Debug)]
pub struct Answer {
    pub reply: Reply,
    pub record: TokenRequest,
}

/// Judges `incoming` and, when it passes, issues a token.
pub fn answer(state: &EntraState, incoming: &Incoming) -> Answer {
    let outcome = if state.is_down() {
        Err(entra_error(
            503,
            "temporarily_unavailable",
            90033,
            "A transient error has occurred. Please try again.",
        ))
    } else {
        match incoming {
            Incoming::ManagedIdentity {
                is_get,
                query,
                header_ok,
            } => managed_identity(state, *is_get, query, *header_ok),
            Incoming::ClientCredentials {
                tenant_id,
                is_post,
                form,
            } => client_credentials(state, tenant_id, *is_post, form),
        }
    };
    let (reply, subject) = match outcome {
        Ok((reply, subject)) => (reply, Some(subject)),
        Err(reply) => (reply, None),
    };
    let record = TokenRequest {
        flow: incoming.flow(),
        tenant_id: match incoming {
            Incoming::ClientCredentials { tenant_id, .. } => Some(tenant_id.clone()),
            Incoming::ManagedIdentity { .. } => None,
        },
        client_id: incoming.client_id().map(str::to_owned),
        resource: incoming.resource().map(str::to_owned),
        status: reply.status,
        subject,
    };
    Answer { reply, record }
}

type Outcome = Result<(Reply, String), Reply>;

/// App Service's managed identity endpoint, API version 2019-08-01.
fn managed_identity(state: &EntraState, is_get: bool, query: &Form, header_ok: bool) -> Outcome {
    if !is_get {
        return Err(mi_error(
            405,
            "The requested resource does not support this method.",
        ));
    }
    if !header_ok {
        return Err(mi_error(
            401,
            "The X-IDENTITY-HEADER request header is missing or does not match the identity secret.",
        ));
    }
    match query.get("api-version") {
        None => {
            return Err(mi_error(
                400,
                "The api-version query parameter is required.",
            ));
        }
        Some(MI_API_VERSION) => {}
        Some(_) => {
            return Err(mi_error(
                400,
                "The api-version is not supported. Supported version: 2019-08-01.",
            ));
        }
    }
    let Some(resource) = query.get("resource") else {
        return Err(mi_error(400, "The resource query parameter is required."));
    };
    let subject = mi_subject(query).into_owned();
    let issued = state
        .ledger
        .issue(&subject, Some(resource), state.lifetime());
    // `expires_on` is a string of Unix seconds: azure_identity parses it with `str::parse::<i64>`
    // and fails on a JSON number. `token_type` and `resource` are required by its parser too.
    let body = json!({
        "access_token": issued.token,
        "expires_on": issued.expires_on().to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": query.get("client_id").unwrap_or(state.system_client_id.as_str()),
    });
    Ok((ok(body), subject))
}

/// Entra ID's v2.0 token endpoint, client credentials grant.
fn client_credentials(state: &EntraState, tenant_id: &str, is_post: bool, form: &Form) -> Outcome {
    if !is_post {
        return Err(entra_error(
            400,
            "invalid_request",
            900561,
            "The endpoint only accepts POST, OPTIONS requests.",
        ));
    }
    if !state.tenant_exists(tenant_id) {
        return Err(entra_error(
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant_id}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        ));
    }
    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| missing("grant_type"))?;
    if grant_type != "client_credentials" {
        return Err(entra_error(
            400,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant_type}'."),
        ));
    }
    let client_id = form.get("client_id").ok_or_else(|| missing("client_id"))?;
    let scope = form.get("scope").ok_or_else(|| missing("scope"))?;
    let Some(resource) = scope.strip_suffix("/.default").filter(|r| !r.contains(' ')) else {
        return Err(entra_error(
            400,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    };
    let credential = match (form.get("client_secret"), form.get("client_assertion")) {
        (Some(secret), _) => Credential::Secret(secret),
        (None, Some(assertion)) => {
            match form.get("client_assertion_type") {
                None => return Err(missing("client_assertion_type")),
                Some(ASSERTION_TYPE) => {}
                Some(_) => {
                    return Err(entra_error(
                        400,
                        "invalid_request",
                        7000219,
                        "'client_assertion_type' must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.",
                    ));
                }
            }
            Credential::Assertion(assertion)
        }
        (None, None) => {
            return Err(entra_error(
                401,
                "invalid_client",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
            ));
        }
    };
    if let Err(refusal) = state.verify(tenant_id, client_id, credential) {
        return Err(refusal_error(refusal, tenant_id, client_id));
    }
    let lifetime = state.lifetime();
    let issued = state.ledger.issue(client_id, Some(resource), lifetime);
    let body = json!({
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "ext_expires_in": lifetime.as_secs(),
        "access_token": issued.token,
    });
    Ok((ok(body), client_id.to_owned()))
}

fn refusal_error(refusal: Refusal, tenant_id: &str, client_id: &str) -> Reply {
    match refusal {
        Refusal::UnknownTenant => entra_error(
            400,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant_id}' not found."),
        ),
        Refusal::UnknownClient => entra_error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant_id}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        ),
        Refusal::WrongSecret => entra_error(
            401,
            "invalid_client",
            7000215,
            &format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        ),
        Refusal::WrongAssertion => entra_error(
            400,
            "invalid_request",
            70021,
            "No matching federated identity record found for presented assertion.",
        ),
    }
}

fn missing(parameter: &str) -> Reply {
    entra_error(
        400,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{parameter}'."),
    )
}

fn ok(body: serde_json::Value) -> Reply {
    Reply {
        status: 200,
        body: body.to_string(),
    }
}

/// An error body shaped like Entra ID's: `error`, `error_description` starting with
/// `AADSTS<code>:` and ending with trace and correlation ids, `error_codes`, and the rest.
pub fn entra_error(status: u16, error: &str, code: u32, description: &str) -> Reply {
    let timestamp = entra_timestamp(ledger::unix_secs(std::time::SystemTime::now()));
    let trace_id = uuid();
    let correlation_id = uuid();
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}"
        ),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    Reply {
        status,
        body: body.to_string(),
    }
}

/// An error body shaped like the App Service identity endpoint's.
fn mi_error(status: u16, message: &str) -> Reply {
    let body = json!({
        "statusCode": status,
        "message": message,
        "correlationId": uuid(),
    });
    Reply {
        status,
        body: body.to_string(),
    }
}

fn uuid() -> String {
    String::from_utf8(ids::uuid_v4().to_vec()).expect("a UUID is ASCII")
}

/// `2024-05-14 12:34:56Z`, the form of Entra's error timestamps.
fn entra_timestamp(unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const SCOPE: &str = "https://cognitiveservices.azure.com/.default";

    fn state() -> EntraState {
        let state = EntraState::new();
        state.register_secret(TENANT, "app", "s3cret+/=");
        state.register_assertion(TENANT, "workload", "eyJhbGciOi.jwt.sig");
        state
    }

    fn token_post(body: &str) -> Incoming {
        let raw = RawRequest {
            secure: true,
            method: "POST",
            path: &format!("/{TENANT}{TOKEN_PATH_SUFFIX}"),
            query: "",
            content_type: Some("application/x-www-form-urlencoded; charset=utf-8"),
            identity_header: None,
            body: body.as_bytes(),
        };
        incoming(&raw, "unused").expect("the token endpoint")
    }

    fn mi_get(query: &str, header: Option<&str>, secret: &str) -> Incoming {
        let raw = RawRequest {
            secure: false,
            method: "GET",
            path: MI_PATH,
            query,
            content_type: None,
            identity_header: header.map(str::as_bytes),
            body: b"",
        };
        incoming(&raw, secret).expect("the managed identity endpoint")
    }

    fn json(reply: &Reply) -> Value {
        serde_json::from_str(&reply.body).expect("a JSON body")
    }

    fn form(pairs: &[(&str, &str)]) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    #[test]
    fn a_form_decodes_percent_escapes_and_plus_signs() {
        let form = Form::parse(b"client_secret=s3cret%2B%2F%3D&scope=a+b&empty=&scope=second");
        assert_eq!(form.get("client_secret"), Some("s3cret+/="));
        assert_eq!(form.get("scope"), Some("a b"));
        assert_eq!(form.get("empty"), None);
        assert_eq!(form.get("absent"), None);
    }

    #[test]
    fn routes_are_split_between_the_plain_and_the_tls_listener() {
        let raw = |secure, path| RawRequest {
            secure,
            method: "POST",
            path,
            query: "",
            content_type: None,
            identity_header: None,
            body: b"",
        };
        let token_path = "/tenant/oauth2/v2.0/token";
        assert!(matches!(
            incoming(&raw(true, token_path), "h"),
            Some(Incoming::ClientCredentials { tenant_id, .. }) if tenant_id == "tenant"
        ));
        assert!(incoming(&raw(false, token_path), "h").is_none());
        assert!(incoming(&raw(true, MI_PATH), "h").is_none());
        assert!(incoming(&raw(true, "//oauth2/v2.0/token"), "h").is_none());
        assert!(incoming(&raw(true, "/a/b/oauth2/v2.0/token"), "h").is_none());
    }

    #[test]
    fn a_client_secret_gets_a_bearer_token_for_the_scope_resource() {
        let state = state();
        let body = form(&[
            ("client_id", "app"),
            ("client_secret", "s3cret+/="),
            ("grant_type", "client_credentials"),
            ("scope", SCOPE),
        ]);
        let answer = answer(&state, &token_post(&body));
        assert_eq!(answer.reply.status, 200);
        let token = json(&answer.reply);
        assert_eq!(token["token_type"], "Bearer");
        assert_eq!(token["expires_in"], 3600);
        assert_eq!(token["ext_expires_in"], 3600);
        let access_token = token["access_token"].as_str().expect("a string token");
        assert_eq!(
            state
                .ledger
                .check(access_token, Some("https://cognitiveservices.azure.com")),
            Some("app".to_owned())
        );
        assert_eq!(answer.record.flow, TokenFlow::ClientSecret);
        assert_eq!(answer.record.subject.as_deref(), Some("app"));
        assert_eq!(answer.record.resource.as_deref(), Some(SCOPE));
    }

    #[test]
    fn a_wrong_secret_is_refused_as_invalid_client_without_echoing_it() {
        let state = state();
        let body = form(&[
            ("client_id", "app"),
            ("client_secret", "wrong-secret-value"),
            ("grant_type", "client_credentials"),
            ("scope", SCOPE),
        ]);
        let answer = answer(&state, &token_post(&body));
        assert_eq!(answer.reply.status, 401);
        assert!(!answer.reply.body.contains("wrong-secret-value"));
        let error = json(&answer.reply);
        assert_eq!(error["error"], "invalid_client");
        assert_eq!(error["error_codes"][0], 7000215);
        let description = error["error_description"].as_str().expect("a description");
        assert!(description.starts_with("AADSTS7000215: Invalid client secret provided."));
        assert!(description.contains("Trace ID: "));
        assert_eq!(answer.record.subject, None);
    }

    #[test]
    fn a_registered_federated_assertion_gets_a_token() {
        let state = state();
        let body = form(&[
            ("client_assertion", "eyJhbGciOi.jwt.sig"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_id", "workload"),
            ("grant_type", "client_credentials"),
            ("scope", SCOPE),
        ]);
        let answer = answer(&state, &token_post(&body));
        assert_eq!(answer.reply.status, 200);
        assert_eq!(answer.record.flow, TokenFlow::ClientAssertion);
        assert_eq!(answer.record.subject.as_deref(), Some("workload"));
    }

    #[test]
    fn an_unknown_assertion_is_refused_without_echoing_it() {
        let state = state();
        let body = form(&[
            ("client_assertion", "forged.jwt.value"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_id", "workload"),
            ("grant_type", "client_credentials"),
            ("scope", SCOPE),
        ]);
        let answer = answer(&state, &token_post(&body));
        assert_eq!(answer.reply.status, 400);
        assert!(!answer.reply.body.contains("forged.jwt.value"));
        assert_eq!(json(&answer.reply)["error_codes"][0], 70021);
    }

    /// Form fields, expected status, expected `AADSTS` code.
    type Case = (&'static [(&'static str, &'static str)], u16, u32);

    #[test]
    fn client_credential_checks_name_the_entra_error_codes() {
        let state = state();
        let cases: [Case; 7] = [
            (
                &[
                    ("client_id", "app"),
                    ("client_secret", "x"),
                    ("scope", SCOPE),
                ],
                400,
                900144,
            ),
            (
                &[
                    ("grant_type", "password"),
                    ("client_id", "app"),
                    ("scope", SCOPE),
                ],
                400,
                70003,
            ),
            (
                &[("grant_type", "client_credentials"), ("scope", SCOPE)],
                400,
                900144,
            ),
            (
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "app"),
                    ("client_secret", "s3cret+/="),
                    ("scope", "https://cognitiveservices.azure.com"),
                ],
                400,
                1002012,
            ),
            (
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "app"),
                    ("scope", SCOPE),
                ],
                401,
                7000216,
            ),
            (
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "stranger"),
                    ("client_secret", "s3cret+/="),
                    ("scope", SCOPE),
                ],
                400,
                700016,
            ),
            (
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "workload"),
                    ("client_assertion", "eyJhbGciOi.jwt.sig"),
                    ("scope", SCOPE),
                ],
                400,
                900144,
            ),
        ];
        for (pairs, status, code) in cases {
            let answer = answer(&state, &token_post(&form(pairs)));
            assert_eq!(answer.reply.status, status, "{pairs:?}");
            assert_eq!(json(&answer.reply)["error_codes"][0], code, "{pairs:?}");
        }
    }

    #[test]
    fn an_unknown_tenant_is_not_found() {
        let state = state();
        let raw = RawRequest {
            secure: true,
            method: "POST",
            path: "/other-tenant/oauth2/v2.0/token",
            query: "",
            content_type: Some(FORM_CONTENT_TYPE),
            identity_header: None,
            body: b"grant_type=client_credentials",
        };
        let incoming = incoming(&raw, "h").expect("the token endpoint");
        let answer = answer(&state, &incoming);
        assert_eq!(answer.reply.status, 400);
        assert_eq!(json(&answer.reply)["error_codes"][0], 90002);
        assert_eq!(answer.record.tenant_id.as_deref(), Some("other-tenant"));
    }

    #[test]
    fn a_body_that_is_not_a_form_is_read_as_empty() {
        let state = state();
        let raw = RawRequest {
            secure: true,
            method: "POST",
            path: &format!("/{TENANT}{TOKEN_PATH_SUFFIX}"),
            query: "",
            content_type: Some("application/json"),
            identity_header: None,
            body: b"grant_type=client_credentials",
        };
        let answer = answer(&state, &incoming(&raw, "h").expect("the token endpoint"));
        let error = json(&answer.reply);
        assert_eq!(error["error_codes"][0], 900144);
        assert!(
            error["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("'grant_type'"))
        );
    }

    #[test]
    fn a_get_on_the_token_endpoint_is_refused() {
        let state = state();
        let raw = RawRequest {
            secure: true,
            method: "GET",
            path: &format!("/{TENANT}{TOKEN_PATH_SUFFIX}"),
            query: "",
            content_type: None,
            identity_header: None,
            body: b"",
        };
        let answer = answer(&state, &incoming(&raw, "h").expect("the token endpoint"));
        assert_eq!(answer.reply.status, 400);
        assert_eq!(json(&answer.reply)["error_codes"][0], 900561);
        assert_eq!(answer.record.flow, TokenFlow::Other);
    }

    #[test]
    fn the_managed_identity_answer_has_the_fields_azure_identity_parses() {
        let state = state();
        let secret = state.identity_header.clone();
        let query = "api-version=2019-08-01&resource=https%3A%2F%2Fcognitiveservices.azure.com";
        let answer = answer(&state, &mi_get(query, Some(&secret), &secret));
        assert_eq!(answer.reply.status, 200);
        let token = json(&answer.reply);
        let expires_on = token["expires_on"]
            .as_str()
            .expect("expires_on is a string");
        assert!(expires_on.parse::<i64>().is_ok());
        assert_eq!(token["token_type"], "Bearer");
        assert_eq!(token["resource"], "https://cognitiveservices.azure.com");
        assert_eq!(
            token["client_id"].as_str(),
            Some(state.system_client_id.as_str())
        );
        let access_token = token["access_token"].as_str().expect("a string token");
        assert_eq!(
            state.ledger.check(access_token, None).as_deref(),
            Some(MI_SUBJECT)
        );
        assert_eq!(answer.record.flow, TokenFlow::ManagedIdentity);
        assert_eq!(answer.record.client_id, None);
    }

    #[test]
    fn a_user_assigned_identity_is_the_subject_of_its_token() {
        let state = state();
        let secret = state.identity_header.clone();
        let incoming = mi_get(
            "api-version=2019-08-01&resource=https://cognitiveservices.azure.com&client_id=uami-1",
            Some(&secret),
            &secret,
        );
        assert_eq!(incoming.client_id(), Some("uami-1"));
        let answer = answer(&state, &incoming);
        assert_eq!(json(&answer.reply)["client_id"], "uami-1");
        assert_eq!(
            answer.record.subject.as_deref(),
            Some("managed-identity:uami-1")
        );
    }

    #[test]
    fn managed_identity_checks_the_secret_header_then_the_query() {
        let state = state();
        let secret = state.identity_header.clone();
        let good = "api-version=2019-08-01&resource=https://cognitiveservices.azure.com";
        let cases = [
            (good, None, 401),
            (good, Some("not-the-secret"), 401),
            (
                "resource=https://cognitiveservices.azure.com",
                Some(secret.as_str()),
                400,
            ),
            (
                "api-version=2017-09-01&resource=https://cognitiveservices.azure.com",
                Some(secret.as_str()),
                400,
            ),
            ("api-version=2019-08-01", Some(secret.as_str()), 400),
        ];
        for (query, header, status) in cases {
            let answer = answer(&state, &mi_get(query, header, &secret));
            assert_eq!(answer.reply.status, status, "{query} {header:?}");
            assert_eq!(json(&answer.reply)["statusCode"], status);
            assert_eq!(answer.record.subject, None);
        }
    }

    #[test]
    fn when_down_every_flow_gets_a_503_with_an_aadsts_description() {
        let state = state();
        state.set_down(true);
        let secret = state.identity_header.clone();
        let mi = mi_get(
            "api-version=2019-08-01&resource=https://cognitiveservices.azure.com",
            Some(&secret),
            &secret,
        );
        let cc = token_post(&form(&[
            ("client_id", "app"),
            ("client_secret", "s3cret+/="),
            ("grant_type", "client_credentials"),
            ("scope", SCOPE),
        ]));
        for incoming in [mi, cc] {
            let answer = answer(&state, &incoming);
            assert_eq!(answer.reply.status, 503);
            let error = json(&answer.reply);
            assert!(
                error["error_description"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("AADSTS90033:"))
            );
        }
    }

    #[test]
    fn the_lifetime_setting_is_the_expires_in_of_new_tokens() {
        let state = state();
        state.set_lifetime_secs(120);
        let body = form(&[
            ("client_id", "app"),
            ("client_secret", "s3cret+/="),
            ("grant_type", "client_credentials"),
            ("scope", SCOPE),
        ]);
        let answer = answer(&state, &token_post(&body));
        assert_eq!(json(&answer.reply)["expires_in"], 120);
    }

    #[test]
    fn timestamps_are_formatted_like_entra_errors() {
        assert_eq!(entra_timestamp(0), "1970-01-01 00:00:00Z");
        assert_eq!(entra_timestamp(1_586_984_735), "2020-04-15 21:05:35Z");
        assert_eq!(entra_timestamp(951_782_400), "2000-02-29 00:00:00Z");
    }
}
