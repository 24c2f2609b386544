use super::*;

fn answers(rows: &[(&str, &str, &str)]) -> Answers {
    let mut labels: Vec<String> = rows.iter().map(|r| r.2.to_owned()).collect();
    labels.sort();
    labels.dedup();
    let mut a = Answers::new(labels).unwrap();
    for (item, worker, label) in rows {
        a.push(item, worker, label).unwrap();
    }
    a
}

#[test]
fn majority_vote_ties_go_to_the_first_label() {
    let a = answers(&[("x", "w1", "b"), ("x", "w2", "a"), ("y", "w1", "b")]);
    let mv = infer(&a, Method::MajorityVote);
    assert_eq!(a.label_name(mv.labels[0]), "a");
    assert_eq!(mv.confidence[0], 0.5);
    assert_eq!(a.label_name(mv.labels[1]), "b");
    assert_eq!(mv.confidence[1], 1.0);
    assert_eq!(mv.worker_skill, vec![0.5, 1.0]);
}

/// Three reliable workers and two who always answer the opposite: the voting methods follow
/// the reliable majority, and the probabilistic ones learn that the contrarians are wrong.
#[test]
fn every_method_recovers_the_truth_from_a_reliable_majority() {
    let mut rows = Vec::new();
    let items: Vec<String> = (0..40).map(|i| format!("item{i}")).collect();
    for (i, item) in items.iter().enumerate() {
        let truth = if i % 3 == 0 { "yes" } else { "no" };
        let wrong = if truth == "yes" { "no" } else { "yes" };
        for worker in ["good1", "good2", "good3"] {
            rows.push((item.as_str(), worker, truth));
        }
        for worker in ["bad1", "bad2"] {
            rows.push((item.as_str(), worker, wrong));
        }
    }
    let a = answers(&rows);
    for method in Method::ALL {
        let result = infer(&a, method);
        for (i, label) in result.labels.iter().enumerate() {
            let truth = if i % 3 == 0 { "yes" } else { "no" };
            assert_eq!(a.label_name(*label), truth, "{method:?} item {i}");
        }
        let good = result.worker_skill[0];
        let bad = result.worker_skill[3];
        assert!(
            good > 0.9 && bad < 0.1,
            "{method:?}: good {good}, bad {bad}"
        );
    }
}

/// A deterministic stand-in for randomness: the same `n` always gives the same value in [0, 1).
/// (splitmix64's finaliser, so neighbouring `n` give unrelated values).
fn unit(n: u64) -> f64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as f64 / 2f64.powi(64)
}

/// Two experts (90% right) among three careless workers (40% right, errors spread evenly) on a
/// three-class task: a vote often sides with the careless, while the probabilistic methods learn
/// who is reliable and follow the experts.
#[test]
fn probabilistic_methods_learn_to_trust_the_experts() {
    let classes = ["a", "b", "c"];
    let mut rows = Vec::new();
    let truth: Vec<usize> = (0..300).map(|i| i % 3).collect();
    for (i, &t) in truth.iter().enumerate() {
        for (w, accuracy) in [0.9, 0.9, 0.4, 0.4, 0.4].into_iter().enumerate() {
            let draw = unit((i * 7 + w) as u64 + 1);
            let label = if draw < accuracy {
                t
            } else if draw < accuracy + (1.0 - accuracy) / 2.0 {
                (t + 1) % 3
            } else {
                (t + 2) % 3
            };
            rows.push((format!("i{i}"), format!("w{w}"), classes[label]));
        }
    }
    let borrowed: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(i, w, l)| (i.as_str(), w.as_str(), *l))
        .collect();
    let a = answers(&borrowed);
    let score = |method| {
        let result = infer(&a, method);
        let right = (0..truth.len())
            .filter(|&i| result.labels[i] as usize == truth[i])
            .count();
        (right as f64 / truth.len() as f64, result)
    };
    let (mv, _) = score(Method::MajorityVote);
    for method in [Method::DawidSkene, Method::Glad] {
        let (accuracy, result) = score(method);
        assert!(
            accuracy > mv + 0.1,
            "{method:?} {accuracy} vs majority {mv}"
        );
        let skills = &result.worker_skill;
        let best_careless = skills[2..].iter().copied().fold(0.0, f64::max);
        assert!(
            skills[0].min(skills[1]) > best_careless + 0.15,
            "{method:?} skills {skills:?}"
        );
    }
}

#[test]
fn confidences_are_probabilities_and_results_are_deterministic() {
    let rows: Vec<(String, String, String)> = (0..300)
        .map(|n: u64| {
            let h = (unit(n) * 2f64.powi(24)) as u64;
            (
                format!("i{}", h % 50),
                format!("w{}", (h / 50) % 9),
                format!("{}", h % 4),
            )
        })
        .collect();
    let borrowed: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(i, w, l)| (i.as_str(), w.as_str(), l.as_str()))
        .collect();
    let a = answers(&borrowed);
    for method in Method::ALL {
        let first = infer(&a, method);
        assert_eq!(first, infer(&a, method), "{method:?} is not deterministic");
        assert_eq!(first.labels.len(), a.item_count());
        for value in first.confidence.iter().chain(&first.worker_skill) {
            assert!((0.0..=1.0).contains(value), "{method:?}: {value}");
        }
    }
}

#[test]
fn accuracy_counts_judged_truth_items_and_reports_the_unjudged() {
    let a = answers(&[("x", "w1", "a"), ("y", "w1", "b"), ("w", "w1", "b")]);
    let mv = infer(&a, Method::MajorityVote);
    let truth = vec![
        ("x".to_owned(), "a".to_owned()),
        ("y".to_owned(), "a".to_owned()),
        // A true label nobody gave: judged, and wrong.
        ("w".to_owned(), "c".to_owned()),
        // Nobody judged z: left out, and counted as such.
        ("z".to_owned(), "a".to_owned()),
    ];
    let scored = accuracy(&a, &mv, &truth);
    assert_eq!(
        scored,
        Accuracy {
            correct: 1,
            compared: 3,
            unjudged: 1
        }
    );
    assert_eq!(scored.share(), Some(1.0 / 3.0));
    let none_judged = accuracy(&a, &mv, &truth[3..]);
    assert_eq!(none_judged.share(), None);
    assert_eq!(none_judged.unjudged, 1);
}
