//! The `fake-foundry` binary: serves the fake on 127.0.0.1 (or `--host`) for benchmarks, manual
//! testing and the `fake` profile of docker-compose.yml. Reads no environment variable.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs as _};
use std::process::ExitCode;

use fake_foundry::{ServeOptions, Throttle, serve};

/// Every flag, with its default and meaning, for `--help`.
const FLAGS: &[(&str, &str, &str)] = &[
    (
        "--host H",
        "127.0.0.1",
        "address to listen on (0.0.0.0 in a container)",
    ),
    (
        "--port N",
        "0 (a free port)",
        "port to listen on; the address is printed at start",
    ),
    ("--latency-ms N", "0", "wait before each answer's head"),
    ("--chunks N", "5", "content events of a streamed answer"),
    ("--gap-ms N", "0", "pause between two events of a stream"),
    ("--workers N", "one per CPU", "worker threads"),
    (
        "--throttle-every N",
        "off",
        "answer every Nth request with 429",
    ),
    ("--retry-after-ms N", "1000", "retry-after-ms of those 429s"),
];

/// `retry-after-ms` of the 429s when `--throttle-every` is given alone.
const DEFAULT_RETRY_AFTER_MS: u64 = 1000;

struct Args {
    host: String,
    port: u16,
    options: ServeOptions,
}

/// What the command line asks for.
enum Command {
    Serve(Args),
    Help,
    Version,
}

fn help() -> String {
    let mut out = format!(
        "fake-foundry {}\nA fake Azure OpenAI upstream (chat completions, Responses, images, embeddings, SSE, \
         Entra tokens) for tests, benchmarks and trying the gateway without Azure.\n\n\
         Usage: fake-foundry [flags] | --help | --version\n\nFlags:\n",
        env!("CARGO_PKG_VERSION")
    );
    for (flag, default, meaning) in FLAGS {
        out.push_str(&format!("  {flag:<22} {meaning} (default: {default})\n"));
    }
    out.push_str("\nEnvironment: none is read.\n");
    out
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut parsed = Args {
        host: "127.0.0.1".into(),
        port: 0,
        options: ServeOptions::default(),
    };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--version" | "-V" => return Ok(Command::Version),
            _ => {}
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |what: &str| {
            value
                .parse::<u64>()
                .map_err(|_| format!("{what}: not a number: {value:?}"))
        };
        let behaviour = &mut parsed.options.behaviour;
        match flag.as_str() {
            "--host" => parsed.host = value,
            "--port" => {
                parsed.port = u16::try_from(number("--port")?)
                    .map_err(|_| format!("--port: out of range: {value}"))?;
            }
            "--latency-ms" => behaviour.latency_ms = number("--latency-ms")?,
            "--chunks" => behaviour.stream_chunks = number("--chunks")? as usize,
            "--gap-ms" => behaviour.chunk_gap_ms = number("--gap-ms")?,
            "--workers" => parsed.options.workers = (number("--workers")? as usize).max(1),
            "--throttle-every" => {
                let every = number("--throttle-every")?;
                let retry_after_ms = behaviour
                    .throttle
                    .map_or(DEFAULT_RETRY_AFTER_MS, |t| t.retry_after_ms);
                behaviour.throttle = Some(Throttle {
                    every,
                    retry_after_ms,
                });
            }
            "--retry-after-ms" => {
                let retry_after_ms = number("--retry-after-ms")?;
                let every = behaviour.throttle.map_or(0, |t| t.every);
                behaviour.throttle = Some(Throttle {
                    every,
                    retry_after_ms,
                });
            }
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok(Command::Serve(parsed))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Serve(args)) => args,
        Ok(Command::Help) => {
            print!("{}", help());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("fake-foundry {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("fake-foundry: {message} (see fake-foundry --help)");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-foundry: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Pending connections the listener queues: a std-bound listener queues 128, which a burst of
/// a thousand clients connecting at once overflows (their SYNs are dropped and retried later).
const BACKLOG: u32 = 4096;

fn run(args: Args) -> std::io::Result<()> {
    actix_rt::System::new().block_on(async move {
        let listener = bind(&args.host, args.port)?;
        let addr = listener.local_addr()?;
        let server = serve(listener, args.options)?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {addr}")?;
        stdout.flush()?;
        drop(stdout);
        server.await
    })
}

/// Binds `host:port` (the first address it resolves to) with [`BACKLOG`] (inside the runtime:
/// the socket is registered with it until converted back).
fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    let addr: SocketAddr = (host.trim_matches(['[', ']']), port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{host} resolves to no address")))?;
    let socket = if addr.is_ipv4() {
        actix_rt::net::TcpSocket::new_v4()?
    } else {
        actix_rt::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)?.into_std()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        match parse_args(args.iter().map(|a| (*a).to_owned()))? {
            Command::Serve(args) => Ok(args),
            Command::Help | Command::Version => Err("not a serve command".into()),
        }
    }

    #[test]
    fn the_host_defaults_to_loopback_and_can_be_any_address() {
        assert_eq!(parse(&[]).map(|a| a.host), Ok("127.0.0.1".to_string()));
        assert_eq!(
            parse(&["--host", "0.0.0.0", "--port", "8081"]).map(|a| (a.host, a.port)),
            Ok(("0.0.0.0".to_string(), 8081))
        );
        assert!(matches!(
            parse_args(["--version".to_string()].into_iter()),
            Ok(Command::Version)
        ));
        let text = help();
        for (flag, _, _) in FLAGS {
            assert!(text.contains(flag), "{flag}");
        }
    }

    #[actix_rt::test]
    async fn it_binds_the_host_it_is_given() {
        let listener = bind("127.0.0.1", 0).expect("binds");
        assert!(listener.local_addr().expect("addr").ip().is_loopback());
        let listener = bind("0.0.0.0", 0).expect("binds");
        assert!(listener.local_addr().expect("addr").ip().is_unspecified());
    }

    #[test]
    fn throttle_flags_in_either_order() {
        let throttle = |args: &[&str]| parse(args).map(|a| a.options.behaviour.throttle);
        assert_eq!(throttle(&[]), Ok(None));
        let expected = Some(Throttle {
            every: 2,
            retry_after_ms: 100,
        });
        assert_eq!(
            throttle(&["--throttle-every", "2", "--retry-after-ms", "100"]),
            Ok(expected)
        );
        assert_eq!(
            throttle(&["--retry-after-ms", "100", "--throttle-every", "2"]),
            Ok(expected)
        );
        assert_eq!(
            throttle(&["--throttle-every", "3"]),
            Ok(Some(Throttle {
                every: 3,
                retry_after_ms: DEFAULT_RETRY_AFTER_MS
            }))
        );
        assert!(parse(&["--throttle-every", "x"]).is_err());
    }
}
