//! A minimal HTTP/1.1 keep-alive client on one TCP connection: writes a prepared request, reads
//! the response head and its body (Content-Length, chunked, or until close) and hands every
//! body read to the caller with the instant it arrived. Just enough HTTP for the gateway, Caddy
//! and the fake, and cheap enough that the load generator is never what is measured.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const READ_BUFFER: usize = 64 * 1024;

pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// When the bytes now in `buf` were read.
    last_read: Instant,
}

/// What is known about a response once its body has been read.
#[derive(Debug, Clone, Copy)]
pub struct Response {
    pub status: u16,
    /// When the first byte of the response arrived.
    pub first_byte: Instant,
    /// False when the server closes the connection after this response.
    pub keep_alive: bool,
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            last_read: Instant::now(),
        })
    }

    /// Sends `request` (a complete HTTP/1.1 request) and reads the whole response, calling
    /// `on_body` with each piece of the decoded body and the instant it was read.
    pub async fn exchange(
        &mut self,
        request: &[u8],
        mut on_body: impl FnMut(&[u8], Instant),
    ) -> io::Result<Response> {
        self.stream.write_all(request).await?;
        let (status, framing, keep_alive, first_byte) = self.read_head().await?;
        match framing {
            Framing::Length(len) => self.read_exact_body(len, &mut on_body).await?,
            Framing::Chunked => self.read_chunked(&mut on_body).await?,
            Framing::UntilClose => self.read_until_close(&mut on_body).await?,
        };
        Ok(Response {
            status,
            first_byte,
            keep_alive,
        })
    }

    /// Reads more bytes into the buffer; an end of stream is an error.
    async fn fill(&mut self) -> io::Result<Instant> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        self.end += n;
        self.last_read = Instant::now();
        Ok(self.last_read)
    }

    async fn read_head(&mut self) -> io::Result<(u16, Framing, bool, Instant)> {
        let mut first_byte = None;
        if self.start < self.end {
            first_byte = Some(self.last_read);
        }
        let head_len = loop {
            if let Some(pos) = memmem::find(&self.buf[self.start..self.end], b"\r\n\r\n") {
                break pos + 4;
            }
            let at = self.fill().await?;
            first_byte.get_or_insert(at);
        };
        let head = &self.buf[self.start..self.start + head_len];
        let status = head
            .get(9..12)
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status line"))?;
        let mut length = None;
        let mut chunked = false;
        let mut keep_alive = true;
        for line in head.split(|b| *b == b'\n').skip(1) {
            let Some(colon) = memchr::memchr(b':', line) else {
                continue;
            };
            let name = &line[..colon];
            let value = line[colon + 1..].trim_ascii();
            if name.eq_ignore_ascii_case(b"content-length") {
                length = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<usize>().ok());
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                chunked = value.to_ascii_lowercase().ends_with(b"chunked");
            } else if name.eq_ignore_ascii_case(b"connection") {
                keep_alive = !value.eq_ignore_ascii_case(b"close");
            }
        }
        self.start += head_len;
        let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
            Framing::Length(0)
        } else if chunked {
            Framing::Chunked
        } else if let Some(len) = length {
            Framing::Length(len)
        } else {
            keep_alive = false;
            Framing::UntilClose
        };
        let first_byte = first_byte.unwrap_or(self.last_read);
        Ok((status, framing, keep_alive, first_byte))
    }

    async fn read_exact_body(
        &mut self,
        len: usize,
        on_body: &mut impl FnMut(&[u8], Instant),
    ) -> io::Result<usize> {
        let mut remaining = len;
        while remaining > 0 {
            if self.start == self.end {
                self.fill().await?;
            }
            let take = remaining.min(self.end - self.start);
            on_body(&self.buf[self.start..self.start + take], self.last_read);
            self.start += take;
            remaining -= take;
        }
        Ok(len)
    }

    async fn read_line(&mut self) -> io::Result<usize> {
        loop {
            if let Some(pos) = memmem::find(&self.buf[self.start..self.end], b"\r\n") {
                return Ok(pos);
            }
            self.fill().await?;
        }
    }

    async fn read_chunked(
        &mut self,
        on_body: &mut impl FnMut(&[u8], Instant),
    ) -> io::Result<usize> {
        let mut total = 0;
        loop {
            let line = self.read_line().await?;
            let size_text = &self.buf[self.start..self.start + line];
            let size_text = size_text
                .split(|b| *b == b';')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            let size = std::str::from_utf8(size_text)
                .ok()
                .and_then(|s| usize::from_str_radix(s, 16).ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            self.start += line + 2;
            if size == 0 {
                // Trailers, if any, up to the empty line.
                loop {
                    let line = self.read_line().await?;
                    self.start += line + 2;
                    if line == 0 {
                        return Ok(total);
                    }
                }
            }
            total += self.read_exact_body(size, on_body).await?;
            while self.end - self.start < 2 {
                self.fill().await?;
            }
            self.start += 2;
        }
    }

    async fn read_until_close(
        &mut self,
        on_body: &mut impl FnMut(&[u8], Instant),
    ) -> io::Result<usize> {
        let mut total = 0;
        loop {
            if self.start < self.end {
                on_body(&self.buf[self.start..self.end], self.last_read);
                total += self.end - self.start;
                self.start = self.end;
            }
            match self.fill().await {
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(total),
                Err(err) => return Err(err),
            }
        }
    }
}

/// A complete HTTP/1.1 request, ready to write.
pub fn request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\n").as_bytes());
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if method != "GET" || !body.is_empty() {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// One GET on a fresh connection: status and body.
pub async fn get(addr: SocketAddr, path: &str) -> io::Result<(u16, Vec<u8>)> {
    let mut conn = Connection::open(addr).await?;
    let mut body = Vec::new();
    let req = request("GET", addr, path, &[], b"");
    let response = conn
        .exchange(&req, |piece, _| body.extend_from_slice(piece))
        .await?;
    Ok((response.status, body))
}
