//! A minimal HTTP/1.1 keep-alive client for the Node.js peer: one connection per caller, JSON
//! bodies, `Content-Length` or chunked answers. Small enough that its own cost stays out of the
//! way; it is not a general client.

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Conn {
    stream: BufReader<TcpStream>,
    addr: String,
}

impl Conn {
    pub async fn connect(addr: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
            addr: addr.to_owned(),
        })
    }

    /// Sends one request and reads its answer: the status and the body.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        json: Option<&str>,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if let Some(token) = bearer {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some(body) = json {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        if let Some(body) = json {
            head.push_str(body);
        }
        self.stream.get_mut().write_all(head.as_bytes()).await?;

        let mut line = String::new();
        self.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("not an HTTP status line: {line:?}"))?;
        let mut length = None;
        let mut chunked = false;
        loop {
            line.clear();
            self.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                bail!("not an HTTP header: {header:?}");
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().context("Content-Length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim_end(), 16).context("chunk size")?;
                let start = body.len();
                body.resize(start + size, 0);
                self.stream.read_exact(&mut body[start..]).await?;
                line.clear();
                self.read_line(&mut line).await?;
                if size == 0 {
                    break;
                }
            }
        } else if let Some(length) = length {
            body.resize(length, 0);
            self.stream.read_exact(&mut body).await?;
        }
        Ok((status, body))
    }

    async fn read_line(&mut self, line: &mut String) -> anyhow::Result<()> {
        if self.stream.read_line(line).await? == 0 {
            bail!("{} closed the connection", self.addr);
        }
        Ok(())
    }
}

/// `GET url` (plain `http://host:port/path`) on a connection of its own; the body, if 200.
pub async fn get_text(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("not an http:// URL: {url}"))?;
    let (addr, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let (status, body) = Conn::connect(addr)
        .await?
        .request("GET", &path, None, None)
        .await?;
    anyhow::ensure!(status == 200, "GET {url}: HTTP {status}");
    Ok(String::from_utf8(body)?)
}
