//! Tags (`GET/POST /api/v4/{entity}/tags`) and links between entities (`POST /api/v4/{entity}/{id}/link|unlink`).

use api_core::Request;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::{Client, CompanyId, ContactId, EntityKey, EntityType, Error, LeadId, ListParams, common::Tag};

/// A link between two entities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// Source entity id (set in responses and mass links).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<u64>,
    /// Source entity type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<EntityType>,
    /// Target id.
    pub to_entity_id: u64,
    /// Target type.
    pub to_entity_type: EntityType,
    /// `{"is_main": true}`, `{"main_contact": true}`, `{"quantity": 1, "catalog_id": ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

impl Link {
    /// The same link from entity `id` (for the mass `link_many` / `unlink_many`).
    #[must_use]
    pub fn of(mut self, id: impl EntityKey) -> Self {
        self.entity_id = Some(id.into());
        self
    }

    /// A link to a contact (`is_main` makes it the lead's main contact).
    #[must_use]
    pub fn contact(id: ContactId, is_main: bool) -> Self {
        Self {
            entity_id: None,
            entity_type: None,
            to_entity_id: id.into(),
            to_entity_type: EntityType::Contacts,
            metadata: is_main.then(|| serde_json::json!({ "is_main": true })),
        }
    }

    /// A link to a company.
    #[must_use]
    pub fn company(id: CompanyId) -> Self {
        Self {
            entity_id: None,
            entity_type: None,
            to_entity_id: id.into(),
            to_entity_type: EntityType::Companies,
            metadata: None,
        }
    }

    /// A link to a lead.
    #[must_use]
    pub fn lead(id: LeadId) -> Self {
        Self {
            entity_id: None,
            entity_type: None,
            to_entity_id: id.into(),
            to_entity_type: EntityType::Leads,
            metadata: None,
        }
    }
}

/// Tags and links of one entity type: `client.entity(EntityType::Leads)`.
#[derive(Debug, Clone)]
pub struct EntityOps<'a> {
    pub(crate) client: &'a Client,
    pub(crate) entity: EntityType,
}

impl EntityOps<'_> {
    /// `POST /api/v4/{entity}/{id}/link`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn link(&self, id: impl EntityKey, links: &[Link]) -> Result<Vec<Link>, Error> {
        let req = Request::post(format!("/api/v4/{}/{id}/link", self.entity.as_str()))
            .json(links)
            .map_err(|e| Error::InvalidRequest(e.to_string()))?
            .idempotent(true);
        let resp = self.client.send(req).await?;
        Ok(crate::hal::decode_list::<Link>(&resp, "links", 1)?.items)
    }

    /// `POST /api/v4/{entity}/{id}/unlink`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn unlink(&self, id: impl EntityKey, links: &[Link]) -> Result<(), Error> {
        let req = Request::post(format!("/api/v4/{}/{id}/unlink", self.entity.as_str()))
            .json(links)
            .map_err(|e| Error::InvalidRequest(e.to_string()))?
            .idempotent(true);
        self.client.send(req).await?;
        Ok(())
    }

    /// `POST /api/v4/{entity}/link`: links several entities at once, each [`Link`] naming its source with
    /// [`Link::of`] (PHP library `LinkMethodsTrait`/`Links`, kommo.md §4 "Links"; body `EntityLinkItem` in
    /// `../shared/openapi/kommo-community.yaml`). Answers the links made.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when a link has no `entity_id`; see [`Error`].
    pub async fn link_many(&self, links: &[Link]) -> Result<Vec<Link>, Error> {
        let resp = self.mass("link", links).await?;
        Ok(crate::hal::decode_list::<Link>(&resp, "links", 1)?.items)
    }

    /// `POST /api/v4/{entity}/unlink`: removes several links at once (each with its `entity_id`).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when a link has no `entity_id`; see [`Error`].
    pub async fn unlink_many(&self, links: &[Link]) -> Result<(), Error> {
        self.mass("unlink", links).await?;
        Ok(())
    }

    async fn mass(&self, what: &str, links: &[Link]) -> Result<api_core::RawResponse, Error> {
        if let Some(n) = links.iter().position(|l| l.entity_id.is_none()) {
            return Err(Error::InvalidRequest(format!("mass {what}: link #{n} names no entity_id (Link::of)")));
        }
        let req = Request::post(format!("/api/v4/{}/{what}", self.entity.as_str()))
            .json(links)
            .map_err(|e| Error::InvalidRequest(e.to_string()))?
            .idempotent(true);
        self.client.send(req).await
    }

    /// `GET /api/v4/{entity}/{id}/links`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn links(&self, id: impl EntityKey) -> Result<Vec<Link>, Error> {
        let path = format!("/api/v4/{}/{id}/links", self.entity.as_str());
        Ok(self.client.list_page(&path, "links", &ListParams::new(), 1).await?.items)
    }

    /// One page of the tags of this entity type (`GET /api/v4/{entity}/tags`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list_tags(&self, params: &ListParams, page: u32) -> Result<crate::ListPage<Tag>, Error> {
        self.client.list_page(&format!("/api/v4/{}/tags", self.entity.as_str()), "tags", params, page).await
    }

    /// Every tag of this entity type, lazily.
    pub fn stream_tags(&self, params: ListParams) -> BoxStream<'static, Result<Tag, Error>> {
        self.client.stream_list(format!("/api/v4/{}/tags", self.entity.as_str()), "tags", params)
    }

    /// `POST /api/v4/{entity}/tags` with names; returns the created tags.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn create_tags(&self, names: &[&str]) -> Result<Vec<Tag>, Error> {
        let body: Vec<serde_json::Value> = names.iter().map(|n| serde_json::json!({ "name": n })).collect();
        let req = Request::post(format!("/api/v4/{}/tags", self.entity.as_str()))
            .json(&body)
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        let resp = self.client.send(req).await?;
        Ok(crate::hal::decode_list::<Tag>(&resp, "tags", 1)?.items)
    }
}
