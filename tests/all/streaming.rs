//! Streamed inference over HTTP: `POST /v2/models/{m}/infer` with `application/x-ndjson`,
//! answered line by line while the request is still being sent.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::support::{fixture, infer_request, post, wafer_server};

/// A hand-driven HTTP/1.1 request with a chunked body, and its chunked response.
struct Stream {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    pending: Vec<u8>,
}

impl Stream {
    fn open(base: &str, path: &str) -> Stream {
        let addr = base.trim_start_matches("http://");
        let writer = TcpStream::connect(addr).expect("connect");
        // A stream that stops answering fails the test rather than hanging it.
        writer
            .set_read_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        let reader = BufReader::new(writer.try_clone().expect("clone"));
        let mut stream = Stream {
            writer,
            reader,
            pending: Vec::new(),
        };
        write!(
            stream.writer,
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-ndjson\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        )
        .expect("request head");
        stream
    }

    /// Sends one line as one chunk.
    fn send(&mut self, line: &str) {
        let data = format!("{line}\n");
        write!(self.writer, "{:x}\r\n{data}\r\n", data.len()).expect("send a line");
        self.writer.flush().expect("flush");
    }

    fn finish(&mut self) {
        self.writer.write_all(b"0\r\n\r\n").expect("end the body");
    }

    /// The status and content type, once the response head has come.
    fn head(&mut self) -> (u16, String) {
        let mut status = String::new();
        self.reader.read_line(&mut status).expect("status line");
        let code = status
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut content_type = String::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("header");
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-type:") {
                content_type = v.trim().to_owned();
            }
        }
        (code, content_type)
    }

    /// The next answer line, or `None` at the end of the response.
    fn answer(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).expect("an answer is JSON"));
            }
            let mut size = String::new();
            self.reader.read_line(&mut size).expect("chunk size");
            let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
            let mut data = vec![0; size + 2];
            self.reader.read_exact(&mut data).expect("chunk");
            if size == 0 {
                return None;
            }
            self.pending.extend_from_slice(&data[..size]);
        }
    }
}

#[test]
fn each_line_is_answered_before_the_next_is_sent_and_a_bad_line_does_not_end_the_stream() {
    line_by_line(&wafer_server().base);
}

#[test]
fn the_guest_streams_the_same_way_under_wasmtime_serve() {
    let component = crate::support::built_component("iris");
    let mut cmd = std::process::Command::new(crate::wasmtime_serve::wasmtime());
    cmd.args(["serve", "-Scli=y", "--addr", "127.0.0.1:0"])
        .arg(&component);
    let server = crate::support::Server::start(cmd, true).expect("wasmtime serve starts");
    line_by_line(&server.base);
}

/// Sends iris's test rows one line at a time on a stream to `base`, each only after the
/// previous one's answer has come, then bad lines and a good one; every answer is checked
/// against what `base` answers on `/infer`.
fn line_by_line(base: &str) {
    let f = fixture("iris");
    let mut stream = Stream::open(base, "/v2/models/iris/infer");
    let mut head = None;
    for (i, row) in f.rows.iter().enumerate() {
        let line = if i % 2 == 0 {
            serde_json::to_string(row).expect("row")
        } else {
            infer_request(&f.input, std::slice::from_ref(row)).to_string()
        };
        stream.send(&line);
        if head.is_none() {
            head = Some(stream.head());
            assert_eq!(head, Some((200, "application/x-ndjson".to_owned())));
        }
        let answer = stream
            .answer()
            .expect("an answer before the next line is sent");
        assert_eq!(answer["line"], i + 1, "{answer}");
        // The same outputs as /infer gives for the same row.
        let body = infer_request(&f.input, std::slice::from_ref(row)).to_string();
        let direct = post(&format!("{base}/v2/models/iris/infer"), body.as_bytes());
        assert_eq!(answer["outputs"], direct.json["outputs"], "row {i}");
    }
    stream.send("[1, 2]");
    let bad = stream.answer().expect("an error line");
    assert_eq!(bad["line"], f.rows.len() + 1);
    let error = bad["error"].as_str().expect("error");
    assert!(error.contains("expected 4 values"), "{error}");
    stream.send("{\"inputs\": nope");
    let bad = stream.answer().expect("an error line");
    assert!(
        bad["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("malformed JSON")),
        "{bad}"
    );
    stream.send(&serde_json::to_string(&f.rows[0]).expect("row"));
    let after = stream.answer().expect("the stream goes on");
    assert_eq!(after["line"], f.rows.len() + 3);
    assert_eq!(after["outputs"][0]["data"][0], f.sklearn_labels[0]);
    stream.finish();
    assert!(
        stream.answer().is_none(),
        "the response ends with the request"
    );
}

#[test]
fn a_stream_to_an_unknown_model_or_another_route_is_refused_whole() {
    // The refusal comes from the request head alone; the server may close the connection
    // before any line is sent, so none is.
    let server = wafer_server();
    let mut stream = Stream::open(&server.base, "/v2/models/nosuch/infer");
    assert_eq!(stream.head().0, 404);
    let mut stream = Stream::open(&server.base, "/v2/models/iris");
    assert_eq!(stream.head().0, 405, "metadata is GET only");
    let mut stream = Stream::open(&server.base, "/v1/models/iris:predict");
    assert_eq!(stream.head().0, 400, "only /infer streams");
}

#[test]
fn each_streamed_line_is_one_invocation_in_the_metrics() {
    let server = crate::support::start_wafer(&crate::support::build_dir(), &[]);
    let f = fixture("iris");
    let mut stream = Stream::open(&server.base, "/v2/models/iris/infer");
    for row in &f.rows[..4] {
        stream.send(&serde_json::to_string(row).expect("row"));
    }
    stream.send("[1, 2]");
    stream.finish();
    assert_eq!(stream.head().0, 200);
    let mut answers = 0;
    while stream.answer().is_some() {
        answers += 1;
    }
    assert_eq!(answers, 5);
    let text = crate::support::get(&format!("{}/metrics", server.base)).text;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("/metrics parses");
    let count = |outcome: &str| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == "wafer_requests_total")
            .filter(|s| s.labels.get("model") == Some("iris"))
            .filter(|s| s.labels.get("outcome") == Some(outcome))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(count("ok"), 4.0, "{text}");
    assert_eq!(count("client_error"), 1.0, "{text}");
}

#[test]
fn a_client_that_disconnects_stops_the_work() {
    const LINES: usize = 20_000;
    let server = crate::support::start_wafer(&crate::support::build_dir(), &[]);
    let mut stream = Stream::open(&server.base, "/v2/models/iris/infer");
    let lines = "[5.1, 3.5, 1.4, 0.2]\n".repeat(LINES);
    write!(stream.writer, "{:x}\r\n{lines}\r\n", lines.len()).expect("send the lines");
    stream.writer.flush().expect("flush");
    assert_eq!(stream.head().0, 200);
    stream.answer().expect("the first answer");
    // Leave without reading the rest.
    drop(stream);
    let last = settled(&server.base);
    assert!(
        last < LINES as f64,
        "all {LINES} lines were scored for a client that had gone"
    );
}

#[test]
fn a_client_that_sends_faster_than_it_reads_is_slowed_down_and_loses_nothing() {
    const LINES: usize = 100_000;
    let server = crate::support::start_wafer(&crate::support::build_dir(), &[]);
    let mut stream = Stream::open(&server.base, "/v2/models/iris/infer");
    // Send every line from another thread, reading nothing meanwhile.
    let mut writer = stream.writer.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let lines = "[5.1, 3.5, 1.4, 0.2]\n".repeat(LINES);
        for chunk in lines.as_bytes().chunks(64 * 1024) {
            write!(writer, "{:x}\r\n", chunk.len()).expect("chunk head");
            writer.write_all(chunk).expect("chunk");
            writer.write_all(b"\r\n").expect("chunk end");
        }
        writer.write_all(b"0\r\n\r\n").expect("end the body");
    });
    // The server scores until the answers it holds and the socket buffers are full, then waits.
    let last = settled(&server.base);
    assert!(
        last < (LINES / 2) as f64,
        "{last} of {LINES} lines were scored for a client reading nothing: answers are buffered \
         without bound"
    );
    // Reading lets it go on, to the last line.
    assert_eq!(stream.head().0, 200);
    let mut answers = 0;
    while let Some(answer) = stream.answer() {
        answers += 1;
        assert_eq!(answer["line"], answers, "answers in order, none lost");
    }
    sender.join().expect("the sender");
    assert_eq!(answers, LINES);
}

/// How many iris invocations (streamed lines among them) the server at `base` has counted.
fn iris_lines_scored(base: &str) -> f64 {
    let text = crate::support::get(&format!("{base}/metrics")).text;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("/metrics parses");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == "wafer_requests_total")
        .filter(|s| s.labels.get("model") == Some("iris"))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// The iris count once it has stopped moving for half a second.
fn settled(base: &str) -> f64 {
    let mut last = iris_lines_scored(base);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = iris_lines_scored(base);
        if now == last {
            return last;
        }
        last = now;
    }
}
