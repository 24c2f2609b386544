//! The table every truth-inference method reads: judgments `(item, worker, label)` with the
//! three keys interned to dense indices, so the methods work on flat arrays.

use rustc_hash::FxHashMap;

/// One judgment: a worker gave an item a label. Indices point into [`Answers`]' key lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Judgment {
    pub item: u32,
    pub worker: u32,
    pub label: u32,
}

/// Keys in first-seen order with a reverse index.
#[derive(Clone, Debug, Default)]
struct Interner {
    keys: Vec<String>,
    index: FxHashMap<String, u32>,
}

impl Interner {
    fn intern(&mut self, key: &str) -> u32 {
        if let Some(&i) = self.index.get(key) {
            return i;
        }
        let i = u32::try_from(self.keys.len()).expect("fewer than 2^32 distinct keys");
        self.keys.push(key.to_owned());
        self.index.insert(key.to_owned(), i);
        i
    }
}

/// Judgments over a fixed, ordered label set. The label order matters: every method breaks ties
/// towards the label that comes first.
#[derive(Clone, Debug)]
pub struct Answers {
    items: Interner,
    workers: Interner,
    labels: Vec<String>,
    label_index: FxHashMap<String, u32>,
    judgments: Vec<Judgment>,
}

/// Why a judgments file or row could not be read. Lines count from 1, the header included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswersError {
    #[error(
        "the file is empty; expected a header line and then rows of `item,worker,label` (columns by position)"
    )]
    Empty,
    #[error("line {line}: expected 3 comma-separated columns `item,worker,label`, found {found}")]
    WrongColumnCount { line: usize, found: usize },
    #[error("line {line}: column {column} is empty")]
    EmptyField { line: usize, column: &'static str },
    #[error("label {label:?} is not one of the label set {known:?}")]
    UnknownLabel { label: String, known: Vec<String> },
    #[error("the label set needs at least 2 distinct labels, got {0}")]
    TooFewLabels(usize),
    #[error("the file has a header but no judgments")]
    NoJudgments,
}

impl Answers {
    /// An empty table over `labels` (in the order ties should favour).
    pub fn new(labels: Vec<String>) -> Result<Answers, AnswersError> {
        let mut label_index = FxHashMap::default();
        for (i, label) in labels.iter().enumerate() {
            label_index.insert(label.clone(), i as u32);
        }
        if label_index.len() < 2 || label_index.len() != labels.len() {
            return Err(AnswersError::TooFewLabels(label_index.len()));
        }
        Ok(Answers {
            items: Interner::default(),
            workers: Interner::default(),
            labels,
            label_index,
            judgments: Vec::new(),
        })
    }

    /// Reads the `item,worker,label` layout: a header line (its names are ignored), then one
    /// judgment per line, columns by position. Repeated `(item, worker)` rows are kept, as the
    /// published figures count them. Labels are ordered numerically when they are all integers
    /// (so ties favour the smallest), otherwise lexicographically.
    pub fn parse_csv(text: &str) -> Result<Answers, AnswersError> {
        let rows = parse_rows(text)?;
        let mut labels: Vec<String> = rows.iter().map(|r| r[2].to_owned()).collect();
        labels.sort_unstable();
        labels.dedup();
        sort_labels(&mut labels);
        let mut answers = Answers::new(labels)?;
        for row in rows {
            answers.push(row[0], row[1], row[2])?;
        }
        Ok(answers)
    }

    /// Adds one judgment; `label` must be in the label set.
    pub fn push(&mut self, item: &str, worker: &str, label: &str) -> Result<(), AnswersError> {
        let label = *self
            .label_index
            .get(label)
            .ok_or_else(|| AnswersError::UnknownLabel {
                label: label.to_owned(),
                known: self.labels.clone(),
            })?;
        let item = self.items.intern(item);
        let worker = self.workers.intern(worker);
        self.judgments.push(Judgment {
            item,
            worker,
            label,
        });
        Ok(())
    }

    pub fn judgments(&self) -> &[Judgment] {
        &self.judgments
    }

    pub fn item_count(&self) -> usize {
        self.items.keys.len()
    }

    pub fn worker_count(&self) -> usize {
        self.workers.keys.len()
    }

    pub fn label_count(&self) -> usize {
        self.labels.len()
    }

    pub fn item_key(&self, item: u32) -> &str {
        &self.items.keys[item as usize]
    }

    pub fn worker_key(&self, worker: u32) -> &str {
        &self.workers.keys[worker as usize]
    }

    pub fn label_name(&self, label: u32) -> &str {
        &self.labels[label as usize]
    }

    pub fn item_index(&self, key: &str) -> Option<u32> {
        self.items.index.get(key).copied()
    }

    pub fn label_index(&self, name: &str) -> Option<u32> {
        self.label_index.get(name).copied()
    }
}

/// Reads `item,label` truth rows (header first) into a map from item key to label name.
pub fn parse_truth_csv(text: &str) -> Result<Vec<(String, String)>, AnswersError> {
    let mut out = Vec::new();
    for (line_no, line) in data_lines(text)? {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != 2 {
            return Err(AnswersError::WrongColumnCount {
                line: line_no,
                found: fields.len(),
            });
        }
        for (field, column) in fields.iter().zip(["item", "label"]) {
            if field.is_empty() {
                return Err(AnswersError::EmptyField {
                    line: line_no,
                    column,
                });
            }
        }
        out.push((fields[0].to_owned(), fields[1].to_owned()));
    }
    Ok(out)
}

fn parse_rows(text: &str) -> Result<Vec<[&str; 3]>, AnswersError> {
    let mut rows = Vec::new();
    for (line_no, line) in data_lines(text)? {
        let mut fields = line.split(',').map(str::trim);
        let (Some(item), Some(worker), Some(label), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(AnswersError::WrongColumnCount {
                line: line_no,
                found: line.split(',').count(),
            });
        };
        for (field, column) in [(item, "item"), (worker, "worker"), (label, "label")] {
            if field.is_empty() {
                return Err(AnswersError::EmptyField {
                    line: line_no,
                    column,
                });
            }
        }
        rows.push([item, worker, label]);
    }
    if rows.is_empty() {
        return Err(AnswersError::NoJudgments);
    }
    Ok(rows)
}

/// Non-blank lines after the header, numbered from 1 counting the header.
fn data_lines(text: &str) -> Result<impl Iterator<Item = (usize, &str)>, AnswersError> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if !header.trim().is_empty() => {}
        _ => return Err(AnswersError::Empty),
    }
    Ok(lines
        .map(|(i, line)| (i + 1, line.trim_end_matches('\r')))
        .filter(|(_, line)| !line.trim().is_empty()))
}

fn sort_labels(labels: &mut [String]) {
    let numeric: Option<Vec<i64>> = labels.iter().map(|l| l.parse().ok()).collect();
    if numeric.is_some() {
        labels.sort_by_key(|l| l.parse::<i64>().expect("checked numeric"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_labels_sort_by_value_and_keys_intern_in_order() {
        let a = Answers::parse_csv("q,w,a\nx,w1,10\nx,w2,9\ny,w1,10\n").unwrap();
        assert_eq!(a.label_name(0), "9");
        assert_eq!(a.label_name(1), "10");
        assert_eq!((a.item_count(), a.worker_count()), (2, 2));
        assert_eq!(a.item_key(1), "y");
        assert_eq!(
            a.judgments()[1],
            Judgment {
                item: 0,
                worker: 1,
                label: 0
            }
        );
    }

    #[test]
    fn bad_rows_name_their_line() {
        assert_eq!(
            Answers::parse_csv("h\na,b,1\na,b\n").unwrap_err(),
            AnswersError::WrongColumnCount { line: 3, found: 2 }
        );
        assert_eq!(
            Answers::parse_csv("h\na,,1\nb,c,2\n").unwrap_err(),
            AnswersError::EmptyField {
                line: 2,
                column: "worker"
            }
        );
        assert_eq!(Answers::parse_csv("").unwrap_err(), AnswersError::Empty);
        assert_eq!(
            Answers::parse_csv("h\n").unwrap_err(),
            AnswersError::NoJudgments
        );
        assert_eq!(
            Answers::parse_csv("h\na,b,1\n").unwrap_err(),
            AnswersError::TooFewLabels(1)
        );
    }
}
