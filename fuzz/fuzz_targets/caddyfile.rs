//! The Caddyfile renderer: any config that validates renders, and the rendered Caddyfile has
//! exactly the directives of the same config with its strings (domain, e-mail, admin path,
//! upstream host) replaced by plain ones: no value from config.json adds a directive, a block,
//! a comment or a line. (control's tests run `caddy adapt` on what this corpus renders.)
#![no_main]

use control::caddy::caddyfile::{BUILTIN_TEMPLATE, render};
use gateway_fuzz::{render_settings, skeleton};
use libfuzzer_sys::fuzz_target;
use proxy::config::{Config, validate};

/// The config with every string the template prints replaced by a plain value of the same
/// role, so that the template takes the same branches.
fn plain_twin(config: &Config) -> Config {
    let mut raw = config.raw.clone();
    let caddy = &mut raw.server.caddy;
    if !caddy.domain.is_empty() {
        caddy.domain = "gateway.example.com".into();
    }
    if !caddy.email.is_empty() {
        caddy.email = "ops@example.com".into();
    }
    caddy.upstream_host = "127.0.0.1".into();
    raw.server.admin_path = "/admin".into();
    validate(raw).unwrap_or_else(|err| panic!("the plain twin does not validate: {err}"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(config) = proxy::config::load(data) else {
        return;
    };
    let twin = plain_twin(&config);
    for tls_internal in [false, true] {
        let settings = render_settings(tls_internal);
        let text = render(BUILTIN_TEMPLATE, &config, &settings)
            .unwrap_or_else(|err| panic!("a valid config does not render: {err}"));
        let expected = render(BUILTIN_TEMPLATE, &twin, &settings).expect("the twin renders");
        let got = skeleton(&text).unwrap_or_else(|err| panic!("{err}:\n{text}"));
        let want = skeleton(&expected).expect("the twin's skeleton");
        assert_eq!(got, want, "rendered:\n{text}");
    }
});
