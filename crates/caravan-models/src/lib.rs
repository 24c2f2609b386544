//! caravan's models: classifiers trained with linfa on published datasets, the features they
//! read (numbers, TF-IDF, or sentence embeddings from all-MiniLM-L6-v2 run by candle), and their
//! artifacts stored by content hash. Nothing here touches money: the server
//! meters calls and the core pays for them.

pub mod artifact;
pub mod classifier;
pub mod embedding;
pub mod features;

pub use artifact::{ArtifactError, ArtifactStore};
pub use classifier::{
    ARTIFACT_FORMAT, Classifier, Evaluation, Example, Prediction, TrainError, TrainOptions, Trained,
};
pub use embedding::{EncoderError, SentenceEncoder};
pub use features::{FeatureError, FeatureSpec, TextFeatures};
