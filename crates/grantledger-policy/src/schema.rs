//! The grantledger Cedar schema (`schemas/grantledger.cedarschema`), parsed
//! once and shared by everything that validates policies or requests.

use crate::error::{LoadError, LoadErrorKind};

/// The schema text shipped with grantledger.
pub const SCHEMA_TEXT: &str = include_str!("../../../schemas/grantledger.cedarschema");

/// The parsed grantledger schema.
#[derive(Clone, Debug)]
pub struct GrantledgerSchema {
    schema: cedar_policy::Schema,
}

impl GrantledgerSchema {
    /// Parses the shipped schema. It is part of the build, so this fails
    /// only if the file in `schemas/` was edited into something invalid; the
    /// crate's tests catch that before it ships.
    pub fn shipped() -> Result<GrantledgerSchema, LoadError> {
        GrantledgerSchema::parse(SCHEMA_TEXT)
    }

    /// Parses a schema in Cedar's human-readable syntax. Warnings (such as
    /// a type that shadows a built-in) refuse it.
    pub fn parse(text: &str) -> Result<GrantledgerSchema, LoadError> {
        let (schema, mut warnings) =
            cedar_policy::Schema::from_cedarschema_str(text).map_err(|error| {
                LoadError::new(
                    LoadErrorKind::SchemaInvalid,
                    format!("the Cedar schema does not parse: {error}"),
                )
            })?;
        if let Some(warning) = warnings.next() {
            return Err(LoadError::new(
                LoadErrorKind::SchemaInvalid,
                format!("the Cedar schema is refused on a warning: {warning}"),
            ));
        }
        Ok(GrantledgerSchema { schema })
    }

    /// The Cedar schema.
    pub fn cedar(&self) -> &cedar_policy::Schema {
        &self.schema
    }
}
