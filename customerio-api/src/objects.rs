//! Objects and relationships (Track API v2): typed [`Operation`]s for `type: object` (identify, delete,
//! add_relationships, delete_relationships), person-side relationships, and v2 page and screen views.
//!
//! Shapes are the Track spec's (`tests/fixtures/openapi/customerio-track.json`, schemas `object_identify`,
//! `object_delete`, `object_add_relationships`, `object_delete_relationships`, `person_add_relationships`,
//! `person_delete_relationships`, `person_page`, `person_screen`; api-notes customerio.md §2 "object identify"):
//! - an object is addressed by `{"object_type_id": "1", "object_id": "acme"}` (create or update) or
//!   `{"cio_object_id": "…"}` (update only);
//! - from the object's side `cio_relationships` lists people: `[{"identifiers": {"id": "42"},
//!   "relationship_attributes": {…}}]`;
//! - from the person's side it lists objects: `[{"identifiers": {"object_type_id": "1", "object_id": "acme"},
//!   "relationship_attributes": {…}}]`.
//!
//! Send them with [`Client::entity`] or [`Client::batch`], or the shortcuts below.

use serde_json::{Map, Value, json};

use crate::{Client, Error, EventId, Identifier, ObjectId, ObjectTypeId, Operation};

/// How an object is addressed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectRef {
    /// By type and your id (creates the object if it does not exist).
    Id {
        /// The object type (`"1"`).
        object_type_id: ObjectTypeId,
        /// Your id for the object.
        object_id: ObjectId,
    },
    /// By Customer.io's id for it (updates only).
    CioObjectId(String),
}

impl ObjectRef {
    /// By type and id.
    pub fn new(object_type_id: impl Into<ObjectTypeId>, object_id: impl Into<ObjectId>) -> Self {
        Self::Id { object_type_id: object_type_id.into(), object_id: object_id.into() }
    }

    /// By `cio_object_id`.
    pub fn cio(cio_object_id: impl Into<String>) -> Self {
        Self::CioObjectId(cio_object_id.into())
    }

    /// The `identifiers` JSON.
    #[must_use]
    pub fn to_json(&self) -> Value {
        match self {
            Self::Id { object_type_id, object_id } => {
                json!({"object_type_id": object_type_id.as_str(), "object_id": object_id.as_str()})
            }
            Self::CioObjectId(c) => json!({"cio_object_id": c}),
        }
    }
}

/// A relationship to a person, written from the object's side.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonRelationship {
    /// The person (`{"id"}`, `{"email"}` or `{"cio_id"}`).
    pub person: Identifier,
    /// `relationship_attributes` (e.g. `{"role": "admin"}`).
    pub attributes: Map<String, Value>,
}

impl PersonRelationship {
    /// A relationship without attributes.
    #[must_use]
    pub fn new(person: Identifier) -> Self {
        Self { person, attributes: Map::new() }
    }

    /// Adds a relationship attribute.
    #[must_use]
    pub fn attr(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("identifiers".into(), self.person.to_json());
        if !self.attributes.is_empty() {
            m.insert("relationship_attributes".into(), Value::Object(self.attributes.clone()));
        }
        Value::Object(m)
    }
}

/// A relationship to an object, written from the person's side.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectRelationship {
    /// The object.
    pub object: ObjectRef,
    /// `relationship_attributes`.
    pub attributes: Map<String, Value>,
}

impl ObjectRelationship {
    /// A relationship without attributes.
    #[must_use]
    pub fn new(object: ObjectRef) -> Self {
        Self { object, attributes: Map::new() }
    }

    /// Adds a relationship attribute.
    #[must_use]
    pub fn attr(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("identifiers".into(), self.object.to_json());
        if !self.attributes.is_empty() {
            m.insert("relationship_attributes".into(), Value::Object(self.attributes.clone()));
        }
        Value::Object(m)
    }
}

fn object_op(object: &ObjectRef, action: &str) -> Operation {
    let mut m = Map::new();
    m.insert("type".into(), "object".into());
    m.insert("identifiers".into(), object.to_json());
    m.insert("action".into(), action.into());
    Operation::from_map(m)
}

fn view(
    kind: &str,
    who: &Identifier,
    name: &str,
    id: EventId,
    timestamp: Option<i64>,
    data: Map<String, Value>,
) -> Operation {
    let mut op = Operation::person(kind, who);
    op.insert("name", name.into());
    op.insert("id", id.to_string().into());
    if let Some(ts) = timestamp {
        op.insert("timestamp", ts.into());
    }
    if !data.is_empty() {
        op.insert("attributes", Value::Object(data));
    }
    op
}

impl Operation {
    /// `object`/`identify`: creates or updates the object (`null` or `""` removes an attribute), optionally
    /// relating people to it in the same operation (`cio_relationships`).
    #[must_use]
    pub fn object_identify(
        object: &ObjectRef,
        attributes: Map<String, Value>,
        relationships: &[PersonRelationship],
    ) -> Self {
        let mut op = object_op(object, "identify");
        op.insert("attributes", Value::Object(attributes));
        if !relationships.is_empty() {
            op.insert("cio_relationships", relationships.iter().map(PersonRelationship::to_json).collect());
        }
        op
    }

    /// `object`/`delete`.
    #[must_use]
    pub fn object_delete(object: &ObjectRef) -> Self {
        object_op(object, "delete")
    }

    /// `object`/`add_relationships`: relates people to the object.
    #[must_use]
    pub fn object_add_relationships(object: &ObjectRef, people: &[PersonRelationship]) -> Self {
        let mut op = object_op(object, "add_relationships");
        op.insert("cio_relationships", people.iter().map(PersonRelationship::to_json).collect());
        op
    }

    /// `object`/`delete_relationships`: removes people's relationships to the object.
    #[must_use]
    pub fn object_delete_relationships(object: &ObjectRef, people: &[PersonRelationship]) -> Self {
        let mut op = object_op(object, "delete_relationships");
        op.insert("cio_relationships", people.iter().map(PersonRelationship::to_json).collect());
        op
    }

    /// `person`/`add_relationships`: relates the person to objects.
    #[must_use]
    pub fn person_add_relationships(who: &Identifier, objects: &[ObjectRelationship]) -> Self {
        let mut op = Operation::person("add_relationships", who);
        op.insert("cio_relationships", objects.iter().map(ObjectRelationship::to_json).collect());
        op
    }

    /// `person`/`delete_relationships`: removes the person's relationships to objects.
    #[must_use]
    pub fn person_delete_relationships(who: &Identifier, objects: &[ObjectRelationship]) -> Self {
        let mut op = Operation::person("delete_relationships", who);
        op.insert("cio_relationships", objects.iter().map(ObjectRelationship::to_json).collect());
        op
    }

    /// `person`/`page`: a page view (`name` is the URL; `data` goes in `attributes`, e.g. `path`, `referrer`),
    /// deduplicated by `id` like events.
    #[must_use]
    pub fn page(who: &Identifier, url: &str, id: EventId, timestamp: Option<i64>, data: Map<String, Value>) -> Self {
        view("page", who, url, id, timestamp, data)
    }

    /// `person`/`screen`: a mobile screen view, deduplicated by `id`.
    #[must_use]
    pub fn screen(who: &Identifier, name: &str, id: EventId, timestamp: Option<i64>, data: Map<String, Value>) -> Self {
        view("screen", who, name, id, timestamp, data)
    }
}

impl Client {
    /// Creates or updates an object: `POST /api/v2/entity` with an `object`/`identify` operation.
    ///
    /// # Errors
    /// [`Error::Invalid`] when an attribute or identifier breaks a limit; others from the call.
    pub async fn identify_object(&self, object: &ObjectRef, attributes: Map<String, Value>) -> Result<(), Error> {
        self.entity(&Operation::object_identify(object, attributes, &[])).await
    }

    /// Deletes an object: `POST /api/v2/entity` with `object`/`delete`.
    ///
    /// # Errors
    /// From the call.
    pub async fn delete_object(&self, object: &ObjectRef) -> Result<(), Error> {
        self.entity(&Operation::object_delete(object)).await
    }

    /// Relates people to an object: `POST /api/v2/entity` with `object`/`add_relationships`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty list or a limit broken; others from the call.
    pub async fn add_relationships(&self, object: &ObjectRef, people: &[PersonRelationship]) -> Result<(), Error> {
        self.entity(&Operation::object_add_relationships(object, people)).await
    }

    /// Removes people's relationships to an object: `POST /api/v2/entity` with `object`/`delete_relationships`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty list; others from the call.
    pub async fn delete_relationships(&self, object: &ObjectRef, people: &[PersonRelationship]) -> Result<(), Error> {
        self.entity(&Operation::object_delete_relationships(object, people)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_operations() {
        // Track spec's batch example (api-notes customerio.md §2 "Verbatim batch example from the spec")
        let acme = ObjectRef::new("1", "acme");
        let mut attrs = Map::new();
        attrs.insert("name".into(), "Acme Corp".into());
        attrs.insert("plan".into(), "enterprise".into());
        attrs.insert("seats".into(), 50.into());
        assert_eq!(
            serde_json::to_value(Operation::object_identify(&acme, attrs, &[])).unwrap(),
            json!({"type":"object","identifiers":{"object_type_id":"1","object_id":"acme"},"action":"identify","attributes":{"name":"Acme Corp","plan":"enterprise","seats":50}})
        );
        let rel = PersonRelationship::new(Identifier::id("42")).attr("role", "admin");
        assert_eq!(
            serde_json::to_value(Operation::object_add_relationships(&acme, &[rel])).unwrap(),
            json!({"type":"object","identifiers":{"object_type_id":"1","object_id":"acme"},"action":"add_relationships","cio_relationships":[{"identifiers":{"id":"42"},"relationship_attributes":{"role":"admin"}}]})
        );
        let empty = Operation::object_delete_relationships(&acme, &[]);
        assert!(empty.validate().is_err());
        assert!(Operation::object_delete(&ObjectRef::cio("c1")).validate().is_ok());
    }
}
