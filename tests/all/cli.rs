//! `wafer predict` and `wafer build` as a user runs them.

use std::io::Write as _;
use std::process::Stdio;

use serde_json::Value;

use crate::support::{
    assert_matches, build_dir, built_component, fixture, infer_request, labels_and_probabilities,
    post, wafer, wafer_server,
};

fn predict(model: &str, input: &str, stdin: Option<&[u8]>) -> std::process::Output {
    let mut cmd = wafer();
    cmd.args(["predict", model, "--input", input, "--build-dir"])
        .arg(build_dir());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("wafer predict starts");
    if let Some(bytes) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(bytes)
            .expect("write stdin");
    }
    child.wait_with_output().expect("wafer predict finishes")
}

/// The v2 response a successful `wafer predict` printed.
fn printed_json(out: std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("prints JSON")
}

#[test]
fn predict_gives_the_same_numbers_as_the_server() {
    let fx = fixture("digits");
    let request = infer_request(&fx.input, &fx.rows[..25]).to_string();
    let served = post(
        &format!("{}/v2/models/digits/infer", wafer_server().base),
        request.as_bytes(),
    );
    assert_eq!(served.status, 200, "{}", served.text);

    // A v2 request from stdin.
    let printed = printed_json(predict("models/digits", "-", Some(request.as_bytes())));
    assert_eq!(
        printed["outputs"], served.json["outputs"],
        "predict and serve disagree"
    );
    assert_matches(
        "digits predict",
        &labels_and_probabilities(&printed),
        &fx.ort_labels[..25],
        &fx.ort_probabilities[..25],
        1e-5,
    );

    // A plain array of rows from a file, against a component built by `wafer build`.
    let rows_file = build_dir().join("digits-rows.json");
    std::fs::create_dir_all(build_dir()).expect("build dir");
    std::fs::write(
        &rows_file,
        serde_json::to_vec(&fx.rows[..25]).expect("json"),
    )
    .expect("write");
    let component = built_component("digits");
    let printed = printed_json(predict(
        component.to_str().expect("utf-8 path"),
        rows_file.to_str().expect("utf-8"),
        None,
    ));
    assert_eq!(
        printed["outputs"], served.json["outputs"],
        "rows and v2 request disagree"
    );
}

#[test]
fn predict_rejects_bad_input_with_a_message_and_a_non_zero_exit() {
    let cases: [(&[u8], &str); 4] = [
        (b"{\"inputs\": [", "malformed JSON"),
        (
            b"[[1, 2, 3]]",
            "row 0: expected 4 values for input \"X\", got 3",
        ),
        (
            b"[[1, 2, \"x\", 4]]",
            "row 0, column 2: \"x\" is not a number",
        ),
        (
            br#"{"inputs":[{"name":"X","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}"#,
            "expected shape [N,4], got [1,3]",
        ),
    ];
    for (input, message) in cases {
        let out = predict("models/iris", "-", Some(input));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}: {stderr}",
            String::from_utf8_lossy(input)
        );
        assert!(
            stderr.contains(message),
            "stderr {stderr:?} should contain {message:?}"
        );
        assert!(out.stdout.is_empty(), "nothing is printed on failure");
    }
    let out = predict("models/nosuchmodel", "-", Some(b"[]"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuchmodel"));
}

#[test]
fn the_same_inputs_build_the_same_bytes() {
    let dir = crate::support::target_dir().join("wafer-test-reproducible");
    let _ = std::fs::remove_dir_all(&dir);
    let build = |name: &str| {
        let out = dir.join(name);
        let status = wafer()
            .args(["build", "models/credit", "-o"])
            .arg(&out)
            .status()
            .expect("wafer build runs");
        assert!(status.success());
        std::fs::read(out).expect("the component was written")
    };
    // The initializer's hash maps draw random keys; a build seeds them from its inputs.
    assert!(build("a.wasm") == build("b.wasm"), "two builds differ");
}

#[test]
fn compile_fills_the_cache_that_serve_and_predict_use() {
    let cache = crate::support::target_dir().join("wafer-test-compile-cache");
    let _ = std::fs::remove_dir_all(&cache);
    let compile = |model: &str| {
        let out = wafer()
            .args(["compile", model, "--build-dir"])
            .arg(build_dir())
            .arg("--cache-dir")
            .arg(&cache)
            .output()
            .expect("wafer compile runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(compile("models/iris").contains("compiled cache miss"));
    assert!(compile("models/iris").contains("compiled cache hit"));
    // A built component is the same artifact, so the same entry.
    let component = built_component("iris");
    assert!(compile(component.to_str().expect("utf-8 path")).contains("compiled cache hit"));
}

#[test]
fn predict_stream_answers_each_line_before_the_next_is_sent() {
    use std::io::BufRead as _;

    let mut child = wafer()
        .args(["predict", "models/iris", "--stream", "--build-dir"])
        .arg(build_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("wafer predict --stream starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    // A stream that stops answering must fail the test, not hang it.
    let pid = child.id();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(300));
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    });
    let mut sent = 0;
    let mut exchange = |line: &str| -> Value {
        // A blank line is counted, not answered: send it ahead of the next one.
        if sent == 11 {
            writeln!(stdin).expect("write a blank line");
            sent += 1;
        }
        writeln!(stdin, "{line}").expect("write a line");
        stdin.flush().expect("flush");
        sent += 1;
        let mut answer = String::new();
        stdout.read_line(&mut answer).expect("read an answer");
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer:?}"))
    };
    let f = fixture("iris");
    let mut got = (Vec::new(), Vec::new());
    for (i, row) in f.rows.iter().enumerate() {
        // Rows and whole v2 requests, alternately; each answered before the next is written.
        let line = if i % 2 == 0 {
            serde_json::to_string(row).expect("row")
        } else {
            infer_request(&f.input, std::slice::from_ref(row)).to_string()
        };
        let answer = exchange(&line);
        let number = if i <= 10 { i + 1 } else { i + 3 };
        assert_eq!(answer["line"], number, "{answer}");
        let (labels, probabilities) = labels_and_probabilities(&answer);
        got.0.extend(labels);
        got.1.extend(probabilities);
        if i == 10 {
            let bad = exchange("[1, 2]");
            assert_eq!(bad["line"], 13, "line 12 was blank");
            let error = bad["error"].as_str().expect("an error line");
            assert!(error.contains("expected 4 values"), "{error}");
        }
    }
    assert_matches(
        "iris --stream",
        &got,
        &f.sklearn_labels,
        &f.ort_probabilities,
        1e-5,
    );
    drop(stdin);
    let status = child.wait().expect("exits");
    assert!(status.success(), "the stream ends with stdin: {status}");
}
