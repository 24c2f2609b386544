//! all-MiniLM-L6-v2 run by candle: what a user of embeddings notices — sentences that mean the
//! same are close, token ids and text agree, inputs longer than the model reads are cut — and a
//! classifier trained on embeddings understanding sentences whose words it never saw.

use std::sync::Arc;

use caravan_core::keccak256;
use caravan_models::embedding::{self, EncoderError, MINILM};
use caravan_models::{Classifier, Example, FeatureError, SentenceEncoder, TrainOptions};
use serde_json::json;

/// The installed encoder; the test fails, naming the install script, when it is not installed
/// (`scripts/test.sh` installs it before the tests).
fn encoder() -> Arc<SentenceEncoder> {
    match SentenceEncoder::load_installed(&embedding::default_models_dir()) {
        Ok(encoder) => Arc::new(encoder),
        Err(EncoderError::NotInstalled(dir)) => panic!(
            "{MINILM} not installed in {}; run scripts/models/install.sh (or scripts/test.sh, which installs everything the tests need)",
            dir.display()
        ),
        Err(other) => panic!("{other}"),
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn sentences_that_mean_the_same_are_closer_than_sentences_that_do_not() {
    let encoder = encoder();
    assert_eq!(encoder.dimensions(), 384);
    assert_eq!(encoder.max_tokens(), 256);
    let texts = [
        "A man is playing a guitar.",
        "Someone plays an instrument.",
        "The stock market fell sharply today.",
        "Share prices dropped at the close of trading.",
    ];
    let vectors = encoder.embed_texts(&texts).unwrap();
    for v in &vectors {
        assert_eq!(v.len(), 384);
        assert!(
            (dot(v, v) - 1.0).abs() < 1e-4,
            "embeddings have unit length"
        );
    }
    let music = dot(&vectors[0], &vectors[1]);
    let markets = dot(&vectors[2], &vectors[3]);
    for (a, b) in [(0, 2), (0, 3), (1, 2), (1, 3)] {
        let unrelated = dot(&vectors[a], &vectors[b]);
        assert!(
            music > unrelated + 0.2 && markets > unrelated + 0.2,
            "paraphrases {music:.3} / {markets:.3} vs unrelated {unrelated:.3}"
        );
    }

    // Batching pads inputs to the longest one; the mask keeps padding out of the mean, so a
    // text embeds the same alone as beside a longer one.
    let alone = encoder.embed_texts(&[texts[1]]).unwrap();
    for (x, y) in alone[0].iter().zip(&vectors[1]) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
}

#[test]
fn token_ids_embed_as_the_text_they_spell_and_long_inputs_are_cut() {
    let encoder = encoder();
    let text = "caravan pays the people who label data";
    let framed = encoder.tokenize(text).unwrap();
    assert_eq!(framed.first(), Some(&101), "[CLS] first");
    assert_eq!(framed.last(), Some(&102), "[SEP] last");
    let words = &framed[1..framed.len() - 1];
    let from_ids = encoder
        .embed_tokens(&[encoder.frame_tokens(words).unwrap()])
        .unwrap();
    let from_text = encoder.embed_texts(&[text]).unwrap();
    assert_eq!(from_ids, from_text);

    let long = "word ".repeat(1_000);
    assert_eq!(encoder.tokenize(&long).unwrap().len(), 256);
    assert_eq!(
        encoder.frame_tokens(&vec![2_773; 1_000]).unwrap().len(),
        256
    );

    assert!(matches!(
        encoder.frame_tokens(&[30_522]),
        Err(EncoderError::UnknownToken { id: 30_522, .. })
    ));
    assert!(matches!(
        encoder.tokenize(""),
        Err(EncoderError::EmptyInput)
    ));
}

#[test]
fn a_missing_model_names_the_command_that_installs_it() {
    let dir = tempfile::tempdir().unwrap();
    let error = SentenceEncoder::load_installed(dir.path()).unwrap_err();
    let message = error.to_string();
    let install = format!("scripts/models/install.sh {}", dir.path().display());
    assert!(message.contains(&install), "{message}");
    assert!(
        message.contains(&dir.path().join(MINILM).display().to_string()),
        "{message}"
    );
}

/// Three topics; the sentences to learn from and the ones to score share almost no words, so
/// only a model that reads meaning can place them.
fn topics() -> (Vec<Example>, Vec<Example>) {
    let train = [
        ("sport", "The striker scored twice in the second half."),
        ("sport", "Our team won the championship final on penalties."),
        ("sport", "The goalkeeper saved a late free kick."),
        ("sport", "She ran the marathon in under three hours."),
        ("sport", "The coach was sacked after five defeats in a row."),
        (
            "sport",
            "Tennis fans packed the stadium for the semi-final.",
        ),
        (
            "sport",
            "He broke the national record in the hundred metres.",
        ),
        ("sport", "The league title was decided on the last day."),
        ("cooking", "Simmer the onions in butter until soft."),
        ("cooking", "Knead the dough and let it rise for an hour."),
        ("cooking", "Season the soup with salt and fresh pepper."),
        ("cooking", "Roast the chicken with garlic and rosemary."),
        ("cooking", "Whisk the eggs with sugar for the cake batter."),
        ("cooking", "Chop the tomatoes and add them to the sauce."),
        ("cooking", "Bake the bread until the crust turns golden."),
        ("cooking", "Marinate the fish in lemon juice overnight."),
        ("money", "The central bank raised interest rates again."),
        ("money", "Shares of the company fell after weak earnings."),
        (
            "money",
            "Inflation climbed to its highest level in a decade.",
        ),
        (
            "money",
            "Investors moved their savings into government bonds.",
        ),
        ("money", "The firm reported record quarterly profits."),
        ("money", "Mortgage costs rose for the third month."),
        ("money", "The currency weakened against the dollar."),
        ("money", "Pension funds cut their holdings of equities."),
    ];
    let test = [
        ("sport", "A last-minute header gave the visitors victory."),
        ("sport", "The cyclist crossed the line first in Paris."),
        ("sport", "Referees booked four players during the derby."),
        ("sport", "The swimmer claimed gold at the Olympics."),
        ("cooking", "Fry the mushrooms gently in olive oil."),
        ("cooking", "Stir flour into the milk to thicken it."),
        ("cooking", "Grill the steak for two minutes each side."),
        ("cooking", "Sprinkle basil over the pasta before serving."),
        ("money", "Stock markets tumbled on recession fears."),
        ("money", "Lenders tightened credit for small businesses."),
        (
            "money",
            "Wall Street rallied as traders bought tech stocks.",
        ),
        ("money", "Households paid more tax on their income."),
    ];
    let examples = |rows: &[(&str, &str)]| {
        rows.iter()
            .map(|(label, text)| {
                let data = json!({ "text": text });
                Example {
                    key: keccak256(text.as_bytes()),
                    data,
                    label: label.to_string(),
                }
            })
            .collect()
    };
    (examples(&train), examples(&test))
}

#[test]
fn a_classifier_on_sentence_embeddings_understands_sentences_it_never_saw() {
    let encoder = encoder();
    let (train, test) = topics();
    let with_embeddings = TrainOptions {
        encoder: Some(Arc::clone(&encoder)),
        test_percent: 0,
        regularisation: 0.1,
        ..TrainOptions::default()
    };
    let trained = Classifier::train(&train, &with_embeddings).unwrap();
    assert_eq!(
        trained.classifier.features.describe(),
        "all-MiniLM-L6-v2 sentence embeddings (384 numbers) of text"
    );
    let embeddings = trained.classifier.evaluate(&test).unwrap();
    assert!(
        embeddings.correct >= 10,
        "sentence embeddings placed {} of 12 unseen sentences",
        embeddings.correct
    );

    // TF-IDF has nothing to go on: the unseen sentences share almost no terms with training.
    // Each sentence goes in twice so every training word enters its vocabulary (a term must be
    // seen in two items), which is TF-IDF's best case.
    let mut with_tfidf = train.clone();
    with_tfidf.extend(train.iter().cloned().map(|mut e| {
        e.key.0[31] ^= 1;
        e
    }));
    let tfidf = Classifier::train(
        &with_tfidf,
        &TrainOptions {
            test_percent: 0,
            ..TrainOptions::default()
        },
    )
    .unwrap()
    .classifier
    .evaluate(&test)
    .unwrap();
    eprintln!(
        "unseen sentences placed: embeddings {} of 12, TF-IDF {} of 12",
        embeddings.correct, tfidf.correct
    );
    assert!(
        embeddings.correct > tfidf.correct + 3,
        "embeddings {} vs TF-IDF {} of 12",
        embeddings.correct,
        tfidf.correct
    );

    // The artifact records which weights it reads with; loaded alone it refuses to guess, and
    // with the encoder attached it predicts as the trained model does, several at once too.
    let artifact = trained.classifier.to_artifact();
    let loaded = Classifier::from_artifact(&artifact).unwrap();
    assert_eq!(loaded.encoder_weights(), Some(encoder.weights_hash()));
    assert!(matches!(
        loaded.predict(&test[0].data),
        Err(FeatureError::EncoderNeeded { .. })
    ));
    let loaded = loaded.with_encoder(Arc::clone(&encoder)).unwrap();
    let items: Vec<&serde_json::Value> = test.iter().map(|e| &e.data).collect();
    let many = loaded.predict_many(&items).unwrap();
    for (example, batched) in test.iter().zip(&many) {
        let one = trained.classifier.predict(&example.data).unwrap();
        assert_eq!(one.label, batched.label);
        assert!((one.confidence - batched.confidence).abs() < 1e-6);
    }
}
