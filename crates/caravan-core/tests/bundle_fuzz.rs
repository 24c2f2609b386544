//! Epoch bundles come from outside (`caravan verify`, the explorer's in-browser check, anyone
//! replaying an epoch): whatever the text, parsing and verifying answer with a report or an
//! error, never a panic; and a changed bundle that still verifies against the epoch before pays
//! everyone exactly what the real one does (same leaves, same root, same payouts). Inputs:
//! arbitrary bytes, a real bundle's JSON cut and with characters changed, and the real bundle
//! with one of its values replaced by an arbitrary one. `PROPTEST_CASES` sets the cases
//! (default 256); the count of inputs is printed as `fuzzed epoch bundles: N inputs`.

mod fuzzing;

use std::cell::Cell;

use caravan_core::epoch::EpochBundle;
use caravan_core::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

fn example(name: &str) -> Manifest {
    let path = format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut manifest: Manifest = serde_json::from_str(&text).unwrap();
    manifest.normalise();
    manifest
}

/// Two consecutive bundles of an economy where a shop pays for the example model, which pays
/// the example dataset's contributors, and a contributor earns a bounty in the second epoch.
fn bundles() -> (EpochBundle, EpochBundle) {
    let mut economy = Economy::default();
    let mut append = |event, at| economy.append(event, at).unwrap();
    append(
        Event::Genesis(Genesis {
            treasury: Address::from_label("treasury"),
            protocol_fee: Ppm::new(20_000).unwrap(),
        }),
        0,
    );
    let dataset = example("dataset.json");
    let Licence::Commercial { token, .. } = dataset.licence else {
        panic!("the example dataset is sold in a token");
    };
    append(
        Event::TokenRegistered(Token {
            address: token,
            symbol: "USDC".into(),
            decimals: 6,
        }),
        0,
    );
    append(Event::AssetRegistered(dataset), 0);
    let model = example("model.json");
    let model_id = model.id();
    append(Event::AssetRegistered(model), 0);
    let payer = Address::from_label("shop");
    append(
        Event::Deposited {
            payer,
            token,
            amount: 10_000_000,
        },
        0,
    );
    let mut bundles = Vec::new();
    for round in 0..2u64 {
        economy
            .append(
                Event::UsageRecorded(Usage {
                    asset: model_id,
                    payer,
                    token,
                    amount: 123_457 + u128::from(round),
                    calls: 10,
                    node: Address::from_label("node"),
                }),
                round,
            )
            .unwrap();
        let (outcome, envelope, _) = economy.close_epoch(round + 1).unwrap();
        bundles.push(economy.epoch_bundle(&outcome, envelope.seq, envelope.hash, envelope.at_ms));
    }
    let second = bundles.pop().unwrap();
    (bundles.pop().unwrap(), second)
}

/// Replaces the `at`-th scalar (in document order) of `value` with `with`.
fn replace_scalar(value: &mut Value, at: &mut usize, with: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter_mut().any(|v| replace_scalar(v, at, with)),
        Value::Object(fields) => fields.values_mut().any(|v| replace_scalar(v, at, with)),
        scalar => {
            if *at == 0 {
                *scalar = with.clone();
                true
            } else {
                *at -= 1;
                false
            }
        }
    }
}

fn scalars(value: &Value) -> usize {
    match value {
        Value::Array(items) => items.iter().map(scalars).sum(),
        Value::Object(fields) => fields.values().map(scalars).sum(),
        _ => 1,
    }
}

/// A value a changed field might hold: near the numbers a bundle holds, a hash-like or
/// address-like string, or anything small.
fn arbitrary_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        (0u64..2_000_000).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[0-9]{1,40}".prop_map(Value::from),
        "0x[0-9a-fA-F]{0,66}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
    ]
}

#[test]
fn any_bundle_text_gets_a_report_or_an_error_and_only_the_real_pay_verifies() {
    let (first, second) = bundles();
    verify_bundle(&second, Some(&first)).expect("the real bundle verifies");
    let text = serde_json::to_string_pretty(&second).unwrap();
    let tree: Value = serde_json::to_value(&second).unwrap();
    let leaves = scalars(&tree);
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    let cut_and_changed = fuzzing::cut_and_changed(vec![text]).prop_map(String::into_bytes);
    let one_value_changed = (0..leaves, arbitrary_scalar()).prop_map(move |(at, with)| {
        let mut changed = tree.clone();
        replace_scalar(&mut changed, &mut { at }, &with);
        serde_json::to_vec(&changed).unwrap()
    });
    let inputs = Cell::new(0u64);
    let (parsed, verified) = (Cell::new(0u64), Cell::new(0u64));
    runner
        .run(
            &prop_oneof![
                prop::collection::vec(any::<u8>(), 0..512),
                cut_and_changed,
                one_value_changed
            ],
            |bytes| {
                inputs.set(inputs.get() + 1);
                let Ok(bundle) = serde_json::from_slice::<EpochBundle>(&bytes) else {
                    return Ok(());
                };
                parsed.set(parsed.get() + 1);
                let alone = verify_bundle(&bundle, None);
                if verify_bundle(&bundle, Some(&first)).is_ok() {
                    verified.set(verified.get() + 1);
                    prop_assert!(
                        alone.is_ok(),
                        "what verifies after its epoch verifies alone"
                    );
                    prop_assert_eq!(&bundle.leaves, &second.leaves);
                    prop_assert_eq!(bundle.root, second.root);
                    prop_assert_eq!(&bundle.payouts, &second.payouts);
                }
                Ok(())
            },
        )
        .unwrap();
    println!("fuzzed epoch bundles: {} inputs", inputs.get());
    assert!(
        runner.config().cases < 256 || (parsed.get() > 0 && verified.get() > 0),
        "some changed bundles still parse ({}) and some still verify ({}): the changes reach the checks",
        parsed.get(),
        verified.get()
    );
}
