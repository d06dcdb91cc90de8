//! Shadow and canary traffic, declared in a model's `wafer.toml`: the client always gets the
//! primary's answer while the shadow's are counted; a canary takes its share of requests, one
//! sticky key always the same model.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::operations::{metric, place, repository, serve};
use crate::support::{assert_matches, fixture, get, labels_and_probabilities, request};

/// Waits until the shadow counters of `model` sum to `n`, or 20 s; returns the metrics text.
fn shadowed(base: &str, model: &str, n: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = get(&format!("{base}/metrics")).text;
        if metric(&text, "wafer_shadow_total", &[("model", model)]) >= n
            || Instant::now() > deadline
        {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_shadow_is_counted_and_never_answers() {
    let repo = repository("shadow");
    place("models/iris/model.onnx", &repo.join("iris/model.onnx"));
    std::fs::write(repo.join("iris/wafer.toml"), "shadow = \"iris_b\"\n").expect("writing");
    place(
        "models/zoo/scaler_logreg/model.onnx",
        &repo.join("iris_b/model.onnx"),
    );
    // A shadow that fails every request: digits takes 64 values, not iris's 4.
    place("models/iris/model.onnx", &repo.join("iris_c/model.onnx"));
    std::fs::write(repo.join("iris_c/wafer.toml"), "shadow = \"digits\"\n").expect("writing");
    place("models/digits/model.onnx", &repo.join("digits/model.onnx"));
    let server = serve(&repo, &[]);

    let fx = fixture("iris");
    for (model, shadow, n) in [("iris", "iris_b", 40), ("iris_c", "digits", 30)] {
        let url = format!("{}/v2/models/{model}/infer", server.base);
        for i in 0..n {
            let rows = &fx.rows[i % fx.rows.len()..][..1];
            let (answer, headers) = request(
                "POST",
                &url,
                &[("content-type", "application/json")],
                crate::support::infer_request(&fx.input, rows)
                    .to_string()
                    .as_bytes(),
            );
            assert_eq!(answer.status, 200, "{model}: {}", answer.text);
            // The answer is the primary's: iris's numbers, whatever the shadow says.
            let k = i % fx.rows.len();
            assert_matches(
                model,
                &labels_and_probabilities(&answer.json),
                &fx.sklearn_labels[k..=k],
                &fx.ort_probabilities[k..=k],
                1e-5,
            );
            assert!(
                headers
                    .iter()
                    .any(|(h, v)| h.eq_ignore_ascii_case("x-wafer-model") && v == model)
            );
        }
        let text = shadowed(&server.base, model, n as f64);
        let count = |result| {
            metric(
                &text,
                "wafer_shadow_total",
                &[("model", model), ("shadow", shadow), ("result", result)],
            )
        };
        let (agree, disagree, error) = (count("agree"), count("disagree"), count("error"));
        assert_eq!(
            agree + disagree + error,
            n as f64,
            "{model}: every request mirrored once"
        );
        if shadow == "digits" {
            assert_eq!(error, n as f64, "the failing shadow fails every time");
        } else {
            assert_eq!(error, 0.0);
            assert!(agree > 0.0, "iris and scaler_logreg agree on most labels");
        }
        // The primary's own counts see only its own answers.
        let failures = metric(
            &text,
            "wafer_inference_request_failure_total",
            &[("model", model)],
        );
        assert_eq!(
            failures, 0.0,
            "{model}: the shadow's failures are not the primary's"
        );
        let successes = metric(
            &text,
            "wafer_inference_request_success_total",
            &[("model", model)],
        );
        assert_eq!(successes, n as f64);
    }
}

#[test]
fn a_canary_takes_its_share_and_a_sticky_key_one_model() {
    let repo = repository("canary");
    for name in ["credit", "credit_b"] {
        for file in ["model.onnx", "features.toml"] {
            place(
                &format!("models/credit/{file}"),
                &repo.join(name).join(file),
            );
        }
    }
    std::fs::write(
        repo.join("credit/wafer.toml"),
        "canary = { model = \"credit_b\", percent = 10, sticky = \"user_id\" }\n",
    )
    .expect("writing");
    let server = serve(&repo, &[]);
    let url = format!("{}/v1/models/credit:predict", server.base);
    let record = |user: &str| {
        json!({"instances": [{"age": 41, "income": 52000.0, "debt": 1200.0, "country": "FR",
            "merchant": "mcc3", "signup": 1735689600, "user_id": user}]})
        .to_string()
    };
    let answered_by = |user: &str| {
        let (answer, headers) = request(
            "POST",
            &url,
            &[("content-type", "application/json")],
            record(user).as_bytes(),
        );
        assert_eq!(answer.status, 200, "{}", answer.text);
        headers
            .into_iter()
            .find(|(h, _)| h.eq_ignore_ascii_case("x-wafer-model"))
            .map(|(_, v)| v)
            .expect("the header naming the model")
    };
    let clients: Vec<usize> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|c| {
                let answered_by = &answered_by;
                scope.spawn(move || {
                    (c..2000)
                        .step_by(4)
                        .filter(|i| answered_by(&format!("u{i}")) == "credit_b")
                        .count()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client"))
            .collect()
    });
    let canary: usize = clients.iter().sum();
    // Binomial(2000, 0.1): mean 200, sd 13.4; p = 0.001 two-sided bounds are ±3.29 sd.
    assert!(
        (156..=244).contains(&canary),
        "the canary answered {canary} of 2,000 requests"
    );
    for user in ["u7", "u42", "u1999"] {
        let first = answered_by(user);
        for _ in 0..20 {
            assert_eq!(answered_by(user), first, "{user} moved between models");
        }
    }
}
