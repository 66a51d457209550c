//! The `fake-foundry` binary: serves the fake on 127.0.0.1 for benchmarks and manual testing.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;

use fake_foundry::{ServeOptions, Throttle, serve};

const USAGE: &str = "usage: fake-foundry [--port N] [--latency-ms N] [--chunks N] [--gap-ms N] \
[--workers N] [--throttle-every N] [--retry-after-ms N]";

/// `retry-after-ms` of the 429s when `--throttle-every` is given alone.
const DEFAULT_RETRY_AFTER_MS: u64 = 1000;

struct Args {
    port: u16,
    options: ServeOptions,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        port: 0,
        options: ServeOptions::default(),
    };
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |what: &str| {
            value
                .parse::<u64>()
                .map_err(|_| format!("{what}: not a number: {value:?}"))
        };
        let behaviour = &mut parsed.options.behaviour;
        match flag.as_str() {
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
    Ok(parsed)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("fake-foundry: {message}");
            }
            eprintln!("{USAGE}");
            return if message.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
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
        let listener = bind(args.port)?;
        let addr = listener.local_addr()?;
        let server = serve(listener, args.options)?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {addr}")?;
        stdout.flush()?;
        drop(stdout);
        server.await
    })
}

/// Binds 127.0.0.1:`port` with [`BACKLOG`] (inside the runtime: the socket is registered with it
/// until converted back).
fn bind(port: u16) -> std::io::Result<TcpListener> {
    let socket = actix_rt::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(BACKLOG)?.into_std()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_args(args.iter().map(|a| (*a).to_owned()))
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
