//! Loopback ports for programs that bind them themselves (chromedriver, Caddy, the binaries).
//! A port is free when it is handed out; nothing holds it after that.

use std::net::TcpListener;

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `count` different loopback ports that were free a moment ago.
pub fn free_ports(count: usize) -> Vec<u16> {
    // Held together until all are found, so that no two are the same.
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .expect("a bound listener has an address")
                .port()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_handed_out_together_differ() {
        let mut ports = free_ports(6);
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 6);
        assert_ne!(free_port(), 0);
    }
}
