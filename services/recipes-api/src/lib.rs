//! `recipes-api`: the recipes HTTP service (list/search/get public; create/update/delete).
//!
//! Module map:
//! - [`settings`]: this service's configuration sections.
//! - [`app`]: composition root: picks adapters from settings, builds the module (routes, health checks,
//!   OpenAPI) and the standalone [`app::Application`].
//! - [`http`]: handlers, request/response models, the API error and the OpenAPI document.
//! - [`telemetry`]: sign-in outcome metrics, derived from the identity use case's results.
//! - [`reads`]: the read model: cached, already-encoded answers and the repository decorator that
//!   invalidates them on every write.
//!
//! The `galley` all-in-one binary mounts [`app::RecipesModule`] next to the other services.

pub mod app;
pub mod http;
pub mod reads;
pub mod settings;
pub mod telemetry;

pub use app::{Application, RecipesModule};
pub use settings::Settings;

use galley_platform::Locale;

/// This service's message catalogue, layered over the platform's.
pub const RESOURCES: [(Locale, &str); 2] = [
    (Locale::En, include_str!("../locales/en/recipes.ftl")),
    (Locale::Vi, include_str!("../locales/vi/recipes.ftl")),
];

#[cfg(test)]
mod tests {
    use galley_platform::Localizer;

    #[test]
    fn catalogues_are_complete_in_every_locale() {
        assert_eq!(Localizer::missing_translations(&super::RESOURCES), Vec::new());
    }
}
