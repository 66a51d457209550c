//! A TCP relay on a free loopback port in front of another local port, that a test can cut
//! (connections refused and open ones closed) and restore: a network outage between one
//! client and a server that others still reach. Threads of its own; stops when dropped.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Relay {
    pub port: u16,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    down: AtomicBool,
    stopped: AtomicBool,
    open: Mutex<Vec<TcpStream>>,
}

impl Relay {
    /// Relays `127.0.0.1:<free port>` to `127.0.0.1:target`.
    pub fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let port = listener.local_addr().expect("an address").port();
        let state = Arc::new(State::default());
        let shared = state.clone();
        std::thread::spawn(move || accept(listener, target, shared));
        Relay { port, state }
    }

    /// Cuts the relay: open connections are closed, new ones closed at once.
    pub fn cut(&self) {
        self.state.down.store(true, Ordering::SeqCst);
        let mut open = self.state.open.lock().unwrap_or_else(|e| e.into_inner());
        for stream in open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.state.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        self.cut();
    }
}

fn accept(listener: TcpListener, target: u16, state: Arc<State>) {
    while !state.stopped.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => return,
        };
        if state.down.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let _ = client.set_nonblocking(false);
        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let (Ok(client_read), Ok(server_read)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        {
            let mut open = state.open.lock().unwrap_or_else(|e| e.into_inner());
            open.extend(client.try_clone());
            open.extend(server.try_clone());
        }
        std::thread::spawn(move || copy(client_read, server));
        std::thread::spawn(move || copy(server_read, client));
    }
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}
