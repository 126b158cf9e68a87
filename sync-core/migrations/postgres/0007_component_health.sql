-- Health of the background components of `serve` (start-up validation, each webhook / subscription upkeep), one
-- row per (component, instance): `instance` names the process that reports it (host:pid), so several processes
-- sharing one database each show their own state. `state` is `starting`, `ready` or `failing`; `attempts` counts
-- the failed attempts since the component was last ready; `since` is when it entered `state`, `updated_at` when
-- it last reported (milliseconds of the store's clock). Written by `Store::set_health`, read by `Store::health`
-- (`status`, `/readyz`); a process removes its rows on a clean shutdown (`Store::health_forget`).
CREATE TABLE component_health (
    component  TEXT    NOT NULL,
    instance   TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    attempts   BIGINT  NOT NULL DEFAULT 0,
    last_error TEXT,
    since      BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (component, instance)
);
