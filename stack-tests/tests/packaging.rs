//! The packaging, read as files: what the image build may see (.dockerignore), what the
//! Dockerfile copies, and the services of docker-compose.yml. No container engine needed;
//! docker-compose.yml is read with Python's YAML parser (PyYAML).

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use stack_tests::repo_root;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Whether `path` matches a .dockerignore pattern: `*` within one path segment, `**` across
/// any number of them, and a pattern for a directory covers what is under it.
fn matches(pattern: &str, path: &str) -> bool {
    fn segments(pattern: &[&str], path: &[&str]) -> bool {
        match (pattern.first(), path.first()) {
            (None, _) => true,
            (Some(&"**"), _) => (0..=path.len()).any(|skip| segments(&pattern[1..], &path[skip..])),
            (Some(_), None) => false,
            (Some(p), Some(s)) => glob(p, s) && segments(&pattern[1..], &path[1..]),
        }
    }
    fn glob(pattern: &str, text: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == text,
            Some((head, rest)) => {
                text.starts_with(head)
                    && (head.len()..=text.len())
                        .any(|at| text.is_char_boundary(at) && glob(rest, &text[at..]))
            }
        }
    }
    let pattern: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    segments(&pattern, &path)
}

/// Whether the build context holds `path`, by .dockerignore's rules (the last match wins).
fn in_build_context(dockerignore: &str, path: &str) -> bool {
    let mut included = true;
    for line in dockerignore.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_prefix('!') {
            Some(pattern) if matches(pattern, path) => included = true,
            None if matches(line, path) => included = false,
            _ => {}
        }
    }
    included
}

#[test]
fn the_dockerignore_matcher_follows_dockers_rules() {
    let rules = "data/*\n!data/config.example.json\n*.md\n**/node_modules\n";
    assert!(!in_build_context(rules, "data/config.json"));
    assert!(!in_build_context(rules, "data/stats.json"));
    assert!(in_build_context(rules, "data/config.example.json"));
    assert!(!in_build_context(rules, "README.md"));
    assert!(!in_build_context(
        rules,
        "sdk-tests/node/node_modules/openai/index.js"
    ));
    assert!(in_build_context(rules, "proxy/src/lib.rs"));
}

#[test]
fn the_image_is_built_without_the_operators_config_json() {
    let dockerignore = read(".dockerignore");
    for private in [
        "data/config.json",
        "data/config.json.bak",
        "data/stats.json",
        "data/Caddyfile",
    ] {
        assert!(
            !in_build_context(&dockerignore, private),
            "{private} is in the build context"
        );
    }
    assert!(in_build_context(&dockerignore, "data/config.example.json"));
    let dockerfile = read("Dockerfile");
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY") && l.contains("data"))
    {
        assert!(
            line.contains("data/config.example.json") || line.contains("/app/data"),
            "the Dockerfile copies from data/: {line}"
        );
    }
    assert!(!dockerfile.contains("data/config.json"), "{dockerfile}");
}

#[test]
fn the_dockerfile_copies_every_workspace_members_manifest() {
    let dockerfile = read("Dockerfile");
    let manifest = read("Cargo.toml");
    let members = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("members = ["))
        .expect("workspace members");
    for member in members.trim_end_matches(']').split(',') {
        let member = member.trim().trim_matches('"');
        let copy = format!("COPY {member}/Cargo.toml {member}/");
        assert!(
            dockerfile.contains(&copy),
            "{copy} is missing: cargo cannot load the workspace"
        );
    }
}

/// docker-compose.yml as JSON, or `None` (with a message) without PyYAML outside CI.
fn compose() -> Option<Value> {
    let output = Command::new("python3")
        .arg("-c")
        .arg("import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)")
        .arg(repo_root().join("docker-compose.yml"))
        .output();
    match output {
        Ok(out) if out.status.success() => {
            Some(serde_json::from_slice(&out.stdout).expect("JSON from the YAML"))
        }
        Ok(out) if String::from_utf8_lossy(&out.stderr).contains("No module named 'yaml'") => {
            if std::env::var_os("CI").is_some() {
                panic!("PyYAML is missing (pip install pyyaml)");
            }
            eprintln!("skipping: PyYAML is missing (pip install pyyaml)");
            None
        }
        Ok(out) => panic!(
            "docker-compose.yml is not YAML: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(err) => panic!("python3: {err}"),
    }
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn compose_runs_the_gateway_and_in_its_fake_profile_one_in_front_of_fake_foundry() {
    let Some(compose) = compose() else { return };
    let services = &compose["services"];
    let gateway = &services["gateway"];
    assert!(
        gateway["profiles"].is_null(),
        "the gateway runs without a profile"
    );
    assert!(strings(&gateway["ports"]).contains(&"3000:3000"));
    assert!(strings(&gateway["volumes"]).contains(&"./data:/app/data"));

    let fake = &services["fake-foundry"];
    assert_eq!(strings(&fake["profiles"]), vec!["fake"]);
    assert_eq!(fake["build"]["target"], "fake-foundry");
    assert!(
        read("Dockerfile").contains("AS fake-foundry\n"),
        "no fake-foundry stage in the Dockerfile"
    );
    let command = strings(&fake["command"]);
    let flag = |name: &str| {
        command
            .iter()
            .position(|a| *a == name)
            .and_then(|i| command.get(i + 1))
            .copied()
    };
    assert_eq!(
        flag("--host"),
        Some("0.0.0.0"),
        "reachable from the gateway"
    );
    let port = flag("--port").expect("--port");

    let gateway_fake = &services["gateway-fake"];
    assert_eq!(strings(&gateway_fake["profiles"]), vec!["fake"]);
    assert!(strings(&gateway_fake["depends_on"]).contains(&"fake-foundry"));
    let published: Vec<&str> = strings(&gateway_fake["ports"]);
    assert!(
        published.iter().all(|p| !p.starts_with("3000:")),
        "gateway-fake takes the gateway's port: {published:?}"
    );
    let example = gateway_fake["environment"]["CONFIG_EXAMPLE"]
        .as_str()
        .expect("CONFIG_EXAMPLE");
    let mounted = strings(&gateway_fake["volumes"])
        .into_iter()
        .find_map(|v| {
            let (host, rest) = v.split_once(':')?;
            (rest.trim_end_matches(":ro") == example).then_some(host)
        })
        .expect("CONFIG_EXAMPLE is a mounted file");
    let example_path = repo_root().join(Path::new(mounted));
    let config: Value =
        serde_json::from_slice(&std::fs::read(&example_path).expect("the example")).expect("JSON");
    assert_eq!(
        config["upstreams"][0]["baseUrl"],
        format!("http://fake-foundry:{port}"),
        "the fake profile's config points at fake-foundry"
    );
    proxy::config::load(&std::fs::read(&example_path).expect("read")).expect("a valid config");
}
