use std::collections::HashMap;

use serde_json::Value;

/// Turns the data of `(event_type, from_version)` into the data of `from_version + 1`.
pub type Upcaster = fn(Value) -> Result<Value, String>;

/// The registry of upcasters, one per event type and schema version step. Events are never
/// rewritten in the log; old shapes are brought up to date each time they are read.
#[derive(Default, Clone)]
pub struct Upcasters {
    steps: HashMap<(String, u32), Upcaster>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpcastError {
    #[error("no upcaster from {event_type} v{from} (wanted v{to})")]
    Missing {
        event_type: String,
        from: u32,
        to: u32,
    },
    #[error("{event_type} is at v{from}, newer than this code's v{to}")]
    FromTheFuture {
        event_type: String,
        from: u32,
        to: u32,
    },
    #[error("upcasting {event_type} v{from} failed: {reason}")]
    Failed {
        event_type: String,
        from: u32,
        reason: String,
    },
}

impl Upcasters {
    /// Registers the step from `from_version` to `from_version + 1`.
    pub fn register(&mut self, event_type: &str, from_version: u32, step: Upcaster) -> &mut Self {
        self.steps
            .insert((event_type.to_owned(), from_version), step);
        self
    }

    /// Applies every step from `version` up to `target`.
    pub fn upcast(
        &self,
        event_type: &str,
        version: u32,
        target: u32,
        mut data: Value,
    ) -> Result<Value, UpcastError> {
        if version > target {
            return Err(UpcastError::FromTheFuture {
                event_type: event_type.into(),
                from: version,
                to: target,
            });
        }
        for from in version..target {
            let step = self
                .steps
                .get(&(event_type.to_owned(), from))
                .ok_or_else(|| UpcastError::Missing {
                    event_type: event_type.into(),
                    from,
                    to: target,
                })?;
            data = step(data).map_err(|reason| UpcastError::Failed {
                event_type: event_type.into(),
                from,
                reason,
            })?;
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn chains_steps_and_reports_gaps() {
        let mut upcasters = Upcasters::default();
        upcasters
            .register("E", 1, |d| Ok(json!({ "v2": d })))
            .register("E", 2, |d| Ok(json!({ "v3": d })));
        assert_eq!(
            upcasters.upcast("E", 1, 3, json!(0)),
            Ok(json!({"v3": {"v2": 0}}))
        );
        assert_eq!(upcasters.upcast("E", 3, 3, json!(0)), Ok(json!(0)));
        assert!(matches!(
            upcasters.upcast("E", 1, 4, json!(0)),
            Err(UpcastError::Missing { from: 3, .. })
        ));
        assert!(matches!(
            upcasters.upcast("E", 5, 3, json!(0)),
            Err(UpcastError::FromTheFuture { .. })
        ));
    }
}
