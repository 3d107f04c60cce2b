//! A tiny but real SMTP server for the integration tests.
//!
//! The service delivers mail with lettre over plain `smtp://` (no TLS, no AUTH).
//! Rather than mocking the mailer, the tests point it at this server, so delivery
//! is exercised end to end: lettre's connection pool, the SMTP dialogue, MIME
//! encoding and all. Received mails are parsed with mail-parser (quoted-printable/base64
//! bodies, multiparts, RFC 2047 subjects) and kept in an inbox the tests can wait on.
//!
//! A server can also start "down" ([`SmtpServer::reserve`]) and be brought up
//! later ([`SmtpServer::come_up`]) to test the service's retry of failed sends.
//! Every task the server spawns is aborted when the [`SmtpServer`] is dropped.
#![allow(dead_code, reason = "each test binary uses only some of these helpers")]
#![allow(
    clippy::expect_used,
    reason = "test support: failing loudly is the point"
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinSet};

/// One mail as received over SMTP, with its text body already decoded.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// Envelope sender (`MAIL FROM`), empty for the null sender `<>`.
    pub from: String,
    /// Envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The message exactly as transferred after `DATA`, dot-stuffing undone.
    pub raw: String,
    /// The `Subject` header, RFC 2047 encoded words decoded.
    pub subject: String,
    /// The text body (the `text/plain` part of a multipart), transfer-decoded.
    pub body: String,
}

#[derive(Default)]
struct Inbox {
    mails: Mutex<Vec<ReceivedMail>>,
    arrived: Notify,
    /// Recipients answered `550` at `RCPT TO`, as a server does for an address that does not exist.
    refused: Mutex<Vec<String>>,
    /// How many `RCPT TO` were answered `550`.
    refusals: std::sync::atomic::AtomicUsize,
}

impl Inbox {
    fn push(&self, mail: ReceivedMail) {
        self.mails.lock().expect("inbox lock").push(mail);
        self.arrived.notify_waiters();
    }

    fn refuses(&self, rcpt: &str) -> bool {
        let refused = self.refused.lock().expect("refused lock");
        let hit = refused.iter().any(|r| r.eq_ignore_ascii_case(rcpt));
        if hit {
            self.refusals
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        hit
    }

    fn take_to(&self, rcpt: &str) -> Option<ReceivedMail> {
        let mut mails = self.mails.lock().expect("inbox lock");
        let index = mails.iter().position(|m| is_addressed_to(m, rcpt))?;
        Some(mails.remove(index))
    }
}

fn is_addressed_to(mail: &ReceivedMail, rcpt: &str) -> bool {
    mail.to.iter().any(|to| to.eq_ignore_ascii_case(rcpt))
}

pub struct SmtpServer {
    port: u16,
    /// The bound, not yet listening, socket of a reserved server: it holds the port (so no
    /// other test, or another test run on the machine, can take it) while refusing connections.
    reserved: Mutex<Option<TcpSocket>>,
    inbox: Arc<Inbox>,
    /// The accept loop; it owns the connection tasks, so aborting it ends them too.
    acceptor: Mutex<Option<AbortHandle>>,
}

impl SmtpServer {
    /// Binds 127.0.0.1 on a free port and starts accepting immediately.
    pub async fn start() -> SmtpServer {
        let server = SmtpServer::reserve().await;
        server.come_up().await;
        server
    }

    /// Binds a free port but does not listen on it: connections are refused
    /// until [`SmtpServer::come_up`] is called.
    pub async fn reserve() -> SmtpServer {
        let socket = TcpSocket::new_v4().expect("create SMTP socket");
        socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .expect("bind SMTP port");
        let port = socket.local_addr().expect("SMTP local addr").port();
        SmtpServer {
            port,
            reserved: Mutex::new(Some(socket)),
            inbox: Arc::default(),
            acceptor: Mutex::new(None),
        }
    }

    /// Starts listening on the reserved port. Does nothing if already up.
    pub async fn come_up(&self) {
        let mut acceptor = self.acceptor.lock().expect("acceptor lock");
        if acceptor.is_some() {
            return;
        }
        let socket = self
            .reserved
            .lock()
            .expect("reserved lock")
            .take()
            .expect("a reserved socket");
        let listener = socket.listen(64).expect("listen on SMTP port");
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&self.inbox)));
        *acceptor = Some(task.abort_handle());
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// From now on answers `550 no such user` to `RCPT TO:<rcpt>` (a permanent failure).
    pub fn refuse_recipient(&self, rcpt: &str) {
        self.inbox
            .refused
            .lock()
            .expect("refused lock")
            .push(rcpt.to_owned());
    }

    /// How many times a recipient was refused.
    pub fn refusals(&self) -> usize {
        self.inbox
            .refusals
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Waits until a mail to `rcpt` (case-insensitive) that no earlier call has
    /// taken arrives, removes it from the inbox and returns it.
    /// Panics, listing what was received, if none arrives within `timeout`.
    pub async fn wait_for_mail_to(&self, rcpt: &str, timeout: Duration) -> ReceivedMail {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register interest before looking, so a mail arriving in between still wakes us.
            let mut arrived = std::pin::pin!(self.inbox.arrived.notified());
            arrived.as_mut().enable();
            if let Some(mail) = self.inbox.take_to(rcpt) {
                return mail;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let seen: Vec<String> = self
                    .inbox
                    .mails
                    .lock()
                    .expect("inbox lock")
                    .iter()
                    .map(|m| format!("to {:?}: {:?}", m.to, m.subject))
                    .collect();
                panic!("no mail to {rcpt} within {timeout:?}; untaken mails in inbox: {seen:#?}");
            }
        }
    }

    /// Snapshot of the untaken mails addressed to `rcpt` (case-insensitive).
    pub fn mails_to(&self, rcpt: &str) -> Vec<ReceivedMail> {
        let mails = self.inbox.mails.lock().expect("inbox lock");
        mails
            .iter()
            .filter(|m| is_addressed_to(m, rcpt))
            .cloned()
            .collect()
    }

    /// Number of untaken mails in the inbox.
    pub fn count(&self) -> usize {
        self.inbox.mails.lock().expect("inbox lock").len()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Ok(Some(task)) = self.acceptor.get_mut().map(Option::take) {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, inbox: Arc<Inbox>) {
    // Dropping the JoinSet (when this task is aborted) aborts every connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(serve_connection(stream, Arc::clone(&inbox)));
                }
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

/// Reads one line, without its line ending. `None` at end of stream.
async fn read_line<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> Option<String> {
    let mut buf = Vec::new();
    match reader.read_until(b'\n', &mut buf).await {
        Ok(0) | Err(_) => None,
        Ok(_) => {
            let line = String::from_utf8_lossy(&buf);
            Some(line.trim_end_matches(['\r', '\n']).to_owned())
        }
    }
}

/// Extracts the address from `FROM:<a@b> PARAMS` / `TO:<a@b>` after checking the keyword.
fn path_argument(arg: &str, keyword: &str) -> Option<String> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    match rest.strip_prefix('<') {
        Some(inner) => inner.split_once('>').map(|(addr, _)| addr.to_owned()),
        None => rest.split_whitespace().next().map(str::to_owned),
    }
}

async fn serve_connection(stream: TcpStream, inbox: Arc<Inbox>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write
        .write_all(b"220 localhost ESMTP test server ready\r\n")
        .await?;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    while let Some(line) = read_line(&mut reader).await {
        let (verb, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let reply = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => "250-localhost\r\n250-8BITMIME\r\n250 SMTPUTF8",
            "HELO" => "250 localhost",
            "MAIL" => match path_argument(arg, "FROM:") {
                Some(sender) => {
                    from = Some(sender);
                    to.clear();
                    "250 2.1.0 OK"
                }
                None => "501 5.5.4 syntax: MAIL FROM:<address>",
            },
            "RCPT" if from.is_none() => "503 5.5.1 MAIL first",
            "RCPT" => match path_argument(arg, "TO:") {
                Some(rcpt) if inbox.refuses(&rcpt) => "550 5.1.1 no such user",
                Some(rcpt) => {
                    to.push(rcpt);
                    "250 2.1.5 OK"
                }
                None => "501 5.5.4 syntax: RCPT TO:<address>",
            },
            "DATA" if to.is_empty() => "503 5.5.1 RCPT first",
            "DATA" => {
                write
                    .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let Some(raw) = read_data(&mut reader).await else {
                    return Ok(());
                };
                let sender = from.take().unwrap_or_default();
                inbox.push(parse_mail(sender, std::mem::take(&mut to), raw));
                "250 2.0.0 OK queued"
            }
            "RSET" => {
                from = None;
                to.clear();
                "250 2.0.0 OK"
            }
            "NOOP" => "250 2.0.0 OK",
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 command not recognized",
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
    Ok(())
}

/// Reads the DATA section up to the line ".", undoing dot-stuffing.
/// Lines are re-joined with CRLF. `None` if the stream ends first.
async fn read_data<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> Option<String> {
    let mut raw = String::new();
    loop {
        let line = read_line(reader).await?;
        if line == "." {
            return Some(raw);
        }
        raw.push_str(unstuff(&line));
        raw.push_str("\r\n");
    }
}

/// RFC 5321 §4.5.2: a leading "." on a data line was added by the sender; drop it.
fn unstuff(line: &str) -> &str {
    line.strip_prefix('.').unwrap_or(line)
}

/// The subject (RFC 2047 words decoded) and the text body (transfer-decoded, the text/plain
/// part of a multipart) as mail-parser reads them; line endings as `\n`, the last one dropped.
fn parse_mail(from: String, to: Vec<String>, raw: String) -> ReceivedMail {
    let message = mail_parser::MessageParser::default().parse(raw.as_bytes());
    let subject = message
        .as_ref()
        .and_then(|m| m.subject())
        .unwrap_or_default()
        .to_owned();
    let body = message
        .as_ref()
        .and_then(|m| m.body_text(0))
        .map(|text| {
            let text = text.replace("\r\n", "\n");
            text.strip_suffix('\n').unwrap_or(&text).to_owned()
        })
        .unwrap_or_default();
    ReceivedMail {
        from,
        to,
        raw,
        subject,
        body,
    }
}

/// Finds `/{path}?token=XYZ` in `body` and returns `XYZ` as written (URL-safe
/// characters and %-escapes; a trailing sentence period is not included).
/// Panics if there is no such link.
pub fn extract_token(body: &str, path: &str) -> String {
    let needle = format!("/{}?token=", path.trim_start_matches('/'));
    let start = body
        .find(&needle)
        .map(|at| at + needle.len())
        .unwrap_or_else(|| {
            panic!("no link with {needle:?} in mail body:\n{body}");
        });
    let token = body[start..]
        .split(|c: char| !(c.is_ascii_alphanumeric() || "-_.~%".contains(c)))
        .next()
        .unwrap_or_default()
        .trim_end_matches('.');
    assert!(
        !token.is_empty(),
        "empty token after {needle:?} in mail body:\n{body}"
    );
    token.to_owned()
}

mod tests {
    use super::*;

    #[test]
    fn quoted_printable_soft_breaks_and_escapes() {
        let encoded = "Visit https://example.test/verify-email?token=3Dab=\r\ncd-E=\r\nF  \r\nCaf=C3=A9 =3D done";
        let mail = format!(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{encoded}\r\n"
        );
        assert_eq!(
            parse_mail(String::new(), vec![], mail).body,
            "Visit https://example.test/verify-email?token=abcd-EF\nCafé = done"
        );
    }

    #[test]
    fn base64_body_and_encoded_subject() {
        let mail = "Subject: =?utf-8?b?SGVsbG8g?=\r\n =?utf-8?q?W=C3=B6rld_!?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8g\r\nd29ybGQ=\r\n";
        let parsed = parse_mail("a@x".into(), vec!["b@x".into()], mail.into());
        assert_eq!(parsed.subject, "Hello Wörld !");
        assert_eq!(parsed.body, "hello world");
    }

    #[test]
    fn multipart_takes_first_text_plain() {
        let mail = "Content-Type: multipart/alternative; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--XX\r\nContent-Type: text/plain\r\n\r\nplain\r\n--XX--\r\n";
        assert_eq!(parse_mail(String::new(), vec![], mail.into()).body, "plain");
    }

    #[test]
    fn dot_stuffing_is_undone() {
        assert_eq!(unstuff("..hidden"), ".hidden");
        assert_eq!(unstuff("."), "");
        assert_eq!(unstuff("plain"), "plain");
    }

    #[test]
    fn token_is_extracted_from_link() {
        let body = "Reset: https://a.test/reset-password?token=Ab-_9.x%2F~ now.\nhttps://a.test/verify-email?token=xyz.";
        assert_eq!(extract_token(body, "reset-password"), "Ab-_9.x%2F~");
        assert_eq!(extract_token(body, "/verify-email"), "xyz");
    }

    #[tokio::test]
    async fn server_receives_mail_over_tcp_after_coming_up() {
        let server = SmtpServer::reserve().await;
        assert!(
            TcpStream::connect(("127.0.0.1", server.port()))
                .await
                .is_err(),
            "reserved port must refuse"
        );
        server.come_up().await;
        let stream = TcpStream::connect(("127.0.0.1", server.port()))
            .await
            .expect("connect");
        let mut client = BufReader::new(stream);
        for (send, code) in [
            ("", "220"),
            ("ehlo me\r\n", "250"),
            ("MAIL FROM:<a@x.test> BODY=8BITMIME\r\n", "250"),
            ("rcpt to:<User@X.test>\r\n", "250"),
            ("DATA\r\n", "354"),
            ("Subject: hi\r\n\r\n..dot\r\nline\r\n.\r\n", "250"),
            ("FOO\r\n", "502"),
            ("QUIT\r\n", "221"),
        ] {
            client.write_all(send.as_bytes()).await.expect("write");
            let mut line = read_line(&mut client).await.expect("reply");
            while line.get(3..4) == Some("-") {
                line = read_line(&mut client).await.expect("reply continuation");
            }
            assert!(line.starts_with(code), "{send:?} got {line:?}");
        }
        let mail = server
            .wait_for_mail_to("user@x.test", Duration::from_secs(5))
            .await;
        assert_eq!(
            (mail.from.as_str(), mail.subject.as_str()),
            ("a@x.test", "hi")
        );
        assert_eq!(mail.body, ".dot\nline");
        assert_eq!(server.count(), 0);
    }
}
