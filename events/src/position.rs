use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A point in the global order of the log.
///
/// The pair is backend-specific and opaque to callers: on Postgres it is
/// `(transaction_id, global_position)`, on KurrentDB `(commit, prepare)`. Both order
/// lexicographically, which is all readers rely on. Its text form `"<commit>.<prepare>"` is the
/// consistency token handed to API clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    pub commit: u64,
    pub prepare: u64,
}

impl Position {
    pub const START: Position = Position {
        commit: 0,
        prepare: 0,
    };

    pub fn new(commit: u64, prepare: u64) -> Self {
        Self { commit, prepare }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.commit, self.prepare)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a position is written `<commit>.<prepare>` with two unsigned integers")]
pub struct PositionParseError;

impl FromStr for Position {
    type Err = PositionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (commit, prepare) = s.split_once('.').ok_or(PositionParseError)?;
        Ok(Position {
            commit: commit.parse().map_err(|_| PositionParseError)?,
            prepare: prepare.parse().map_err(|_| PositionParseError)?,
        })
    }
}

impl Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_orders_by_commit_first() {
        let p = Position::new(7, 42);
        assert_eq!(p.to_string(), "7.42");
        assert_eq!("7.42".parse::<Position>(), Ok(p));
        assert!(Position::new(7, 42) < Position::new(8, 1));
        assert!(Position::new(7, 42) < Position::new(7, 43));
        assert_eq!("7".parse::<Position>(), Err(PositionParseError));
        assert_eq!("a.1".parse::<Position>(), Err(PositionParseError));
    }
}
