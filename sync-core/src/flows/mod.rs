//! Ready-made integration flows, one module per integration, each behind its own cargo feature
//! (`kommo-airtable`, `kommo-productive`, `calendly-kommo`, `kommo-customerio`). Filled in by the flow issues.
