//! W&B's custom scalars.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};

/// W&B's `JSONString`: JSON carried as text inside a GraphQL string (`eventFilter`,
/// `filters`, `flags`). Input must be a string holding JSON; a literal object is accepted too
/// and kept as its JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonString(pub String);

impl JsonString {
    pub fn of(v: &serde_json::Value) -> Self {
        Self(v.to_string())
    }

    /// The JSON the text holds; `field` names the input in the error.
    pub fn parse(&self, field: &str) -> async_graphql::Result<serde_json::Value> {
        serde_json::from_str(&self.0)
            .map_err(|e| super::errors::invalid(field, format!("is not valid JSON: {e}")))
    }
}

#[Scalar(name = "JSONString")]
impl ScalarType for JsonString {
    fn parse(value: Value) -> InputValueResult<Self> {
        match value {
            Value::String(s) => Ok(Self(s)),
            Value::Object(_) | Value::List(_) => {
                let json = value
                    .into_json()
                    .map_err(|e| InputValueError::custom(format!("not JSON: {e}")))?;
                Ok(Self(json.to_string()))
            }
            other => Err(InputValueError::custom(format!(
                "a JSONString is a string holding JSON, got {other}"
            ))),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.clone())
    }
}
