//! Builders for domain values used across tests.

use chrono::{DateTime, Duration, TimeZone, Utc};
use galley_recipes::{Recipe, RecipeDraft, RecipeInput};

/// A fixed instant, so tests do not depend on the wall clock.
pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).single().unwrap_or_default()
}

/// Valid recipe content with the given name, tags and ingredients.
pub fn draft(name: &str, tags: &[&str], ingredients: &[&str]) -> RecipeDraft {
    let owned = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    RecipeDraft::parse(RecipeInput {
        name: Some(name.to_owned()),
        tags: Some(owned(tags)),
        ingredients: Some(owned(ingredients)),
        instructions: Some(vec!["Cook it well.".to_owned()]),
    })
    .unwrap_or_else(|violations| panic!("fixture must be valid: {violations}"))
}

/// A recipe published `minutes_after` the fixed epoch.
pub fn recipe(name: &str, tags: &[&str], ingredients: &[&str], minutes_after: i64) -> Recipe {
    Recipe::publish(draft(name, tags, ingredients), None, epoch() + Duration::minutes(minutes_after))
}

/// A clock tests move by hand: token expiry and lockout windows without sleeping.
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self(std::sync::Mutex::new(start)))
    }

    /// Moves time forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        if let Ok(mut now) = self.0.lock() {
            *now += by;
        }
    }
}

impl galley_kernel::Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().map(|now| *now).unwrap_or_default()
    }
}
