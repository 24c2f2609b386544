//! Manifests come from outside (`caravan asset register FILE`, the HTTP API): whatever the text,
//! parsing, normalising and registering answer with an asset or an error, never a panic; a
//! manifest the economy takes survives the event codec unchanged. Inputs: the repository's
//! example manifests cut and with characters changed, and arbitrary text.
//! `PROPTEST_CASES` sets the cases (default 256); the count of inputs is printed as
//! `fuzzed manifests: N inputs`.

mod fuzzing;

use caravan_core::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn example(name: &str) -> String {
    let path = format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An economy where the example dataset is registered, so the example model's parent exists.
fn economy() -> Economy {
    let mut economy = Economy::default();
    economy
        .append(
            Event::Genesis(Genesis {
                treasury: Address::from_label("treasury"),
                protocol_fee: Ppm::ZERO,
            }),
            0,
        )
        .unwrap();
    let mut dataset: Manifest = serde_json::from_str(&example("dataset.json")).unwrap();
    let Licence::Commercial { token, .. } = dataset.licence else {
        panic!("the example dataset is sold in a token");
    };
    economy
        .append(
            Event::TokenRegistered(Token {
                address: token,
                symbol: "USDC".into(),
                decimals: 6,
            }),
            0,
        )
        .unwrap();
    dataset.normalise();
    economy.append(Event::AssetRegistered(dataset), 1).unwrap();
    economy
}

#[test]
fn any_manifest_text_gets_an_asset_or_an_error() {
    let base = economy();
    let examples = vec![example("dataset.json"), example("model.json")];
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    let mutated = fuzzing::cut_and_changed(examples);
    let registered = std::cell::Cell::new(0u32);
    let inputs = std::cell::Cell::new(0u64);
    runner
        .run(&prop_oneof![any::<String>(), mutated], |text| {
            inputs.set(inputs.get() + 1);
            let Ok(mut manifest) = serde_json::from_str::<Manifest>(&text) else {
                return Ok(());
            };
            manifest.normalise();
            let id = manifest.id();
            let event = Event::AssetRegistered(manifest);
            prop_assert_eq!(Event::decode(&event.encode()).ok(), Some(event.clone()));
            let mut economy = base.clone();
            if economy.append(event, 2).is_ok() {
                registered.set(registered.get() + 1);
                prop_assert!(economy.lineage().get(&id).is_some());
            }
            Ok(())
        })
        .unwrap();
    println!("fuzzed manifests: {} inputs", inputs.get());
    assert!(
        runner.config().cases < 256 || registered.get() > 0,
        "some changed manifests still register (the mutations reach the rules)"
    );
}
