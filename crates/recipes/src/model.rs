//! Recipe entities and the rules their content must satisfy.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use galley_kernel::{UserId, Violation, Violations};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Content limits. Generous for real recipes, small enough that one request cannot bloat the store.
pub mod limits {
    pub const NAME_MAX_CHARS: usize = 200;
    pub const TAGS_MAX_ITEMS: usize = 20;
    pub const TAG_MAX_CHARS: usize = 50;
    pub const INGREDIENTS_MAX_ITEMS: usize = 100;
    pub const INGREDIENT_MAX_CHARS: usize = 500;
    pub const INSTRUCTIONS_MAX_ITEMS: usize = 100;
    pub const INSTRUCTION_MAX_CHARS: usize = 2000;
}

/// Recipe identifier: a UUIDv7, so ids sort by creation time and can be made without a round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecipeId(Uuid);

impl RecipeId {
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for RecipeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

/// Any string that is not a UUID names no recipe (callers answer 404, not 422).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a recipe id")]
pub struct InvalidRecipeId;

impl FromStr for RecipeId {
    type Err = InvalidRecipeId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(s).map(Self).map_err(|_| InvalidRecipeId)
    }
}

/// Optimistic-concurrency revision: starts at 1 and grows by one on every write. Exposed as the ETag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Revision(u64);

impl Revision {
    pub const FIRST: Revision = Revision(1);

    pub fn new(value: u64) -> Self {
        Self(value)
    }

    pub fn get(self) -> u64 {
        self.0
    }

    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

/// Which stored revisions a write may replace: the client's `If-Match`, in domain terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Precondition {
    /// Unconditional: the last writer wins (after a bounded number of retries on lost races).
    #[default]
    Any,
    /// Only while the stored revision is one of these. An empty list never holds.
    OneOf(Vec<Revision>),
}

impl Precondition {
    /// Whether a write may replace `current`.
    pub fn holds_for(&self, current: Revision) -> bool {
        match self {
            Self::Any => true,
            Self::OneOf(accepted) => accepted.contains(&current),
        }
    }

    /// Whether the client named the revision(s) it based the write on.
    pub fn is_conditional(&self) -> bool {
        matches!(self, Self::OneOf(_))
    }
}

/// Who is asking: a signed-in user, or an anonymous reader (who may read but never write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Anonymous,
    User(UserId),
}

impl Actor {
    pub fn user_id(&self) -> Option<&UserId> {
        match self {
            Actor::Anonymous => None,
            Actor::User(id) => Some(id),
        }
    }
}

/// A stored recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipe {
    pub id: RecipeId,
    pub name: String,
    pub tags: Vec<String>,
    pub ingredients: Vec<String>,
    pub instructions: Vec<String>,
    pub published_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub owner: Option<UserId>,
    pub revision: Revision,
}

impl Recipe {
    /// A new recipe published now.
    pub fn publish(draft: RecipeDraft, owner: Option<UserId>, now: DateTime<Utc>) -> Self {
        Self {
            id: RecipeId::generate(),
            name: draft.name,
            tags: draft.tags,
            ingredients: draft.ingredients,
            instructions: draft.instructions,
            published_at: now,
            updated_at: now,
            owner,
            revision: Revision::FIRST,
        }
    }

    /// This recipe with its content replaced by `draft`, one revision later.
    #[must_use]
    pub fn revise(&self, draft: RecipeDraft, now: DateTime<Utc>) -> Self {
        Self {
            name: draft.name,
            tags: draft.tags,
            ingredients: draft.ingredients,
            instructions: draft.instructions,
            updated_at: now,
            revision: self.revision.next(),
            ..self.clone()
        }
    }

    /// Lower-cased text that `q` searches: name, tags and ingredients, one per line. Stores keep it
    /// beside the recipe so search needs no per-row work at query time.
    pub fn search_text(&self) -> String {
        let mut text = self.name.to_lowercase();
        for part in self.tags.iter().chain(&self.ingredients) {
            text.push('\n');
            text.push_str(&part.to_lowercase());
        }
        text
    }
}

/// Recipe content exactly as a client sent it; every field optional so that *all* problems, including
/// missing fields, are reported together by [`RecipeDraft::parse`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipeInput {
    pub name: Option<String>,
    pub tags: Option<Vec<String>>,
    pub ingredients: Option<Vec<String>>,
    pub instructions: Option<Vec<String>>,
}

/// Recipe content that satisfies every rule. The only way to make one is [`RecipeDraft::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeDraft {
    name: String,
    tags: Vec<String>,
    ingredients: Vec<String>,
    instructions: Vec<String>,
}

impl RecipeDraft {
    /// Validates and normalises input: trims text, lower-cases and de-duplicates tags (first occurrence
    /// wins), and reports every broken rule with its field path.
    pub fn parse(input: RecipeInput) -> Result<Self, Violations> {
        use limits::*;
        let mut violations = Violations::new();

        let name = match input.name {
            None => {
                violations.push(Violation::new("name", "required"));
                String::new()
            }
            Some(raw) => {
                let name = raw.trim().to_owned();
                check_text(&mut violations, "name", &name, NAME_MAX_CHARS);
                name
            }
        };

        let raw_tags = input.tags.unwrap_or_default();
        check_count(&mut violations, "tags", raw_tags.len(), 0, TAGS_MAX_ITEMS);
        // Beyond the allowed count the draft is refused anyway: items past it are not examined, so an
        // oversized list costs no more than an allowed one.
        let raw_tags = &raw_tags[..raw_tags.len().min(TAGS_MAX_ITEMS)];
        let mut tags: Vec<String> = Vec::with_capacity(raw_tags.len());
        let mut seen: HashSet<String> = HashSet::with_capacity(raw_tags.len());
        for (index, raw) in raw_tags.iter().enumerate() {
            let tag = raw.trim().to_lowercase();
            if check_text(&mut violations, &format!("tags[{index}]"), &tag, TAG_MAX_CHARS)
                && seen.insert(tag.clone())
            {
                tags.push(tag);
            }
        }

        let ingredients = parse_steps(
            &mut violations,
            "ingredients",
            input.ingredients,
            INGREDIENTS_MAX_ITEMS,
            INGREDIENT_MAX_CHARS,
        );
        let instructions = parse_steps(
            &mut violations,
            "instructions",
            input.instructions,
            INSTRUCTIONS_MAX_ITEMS,
            INSTRUCTION_MAX_CHARS,
        );

        violations.into_result(Self { name, tags, ingredients, instructions })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn tags(&self) -> &[String] {
        &self.tags
    }
}

/// A required, non-empty list of non-blank strings.
fn parse_steps(
    violations: &mut Violations,
    field: &str,
    raw: Option<Vec<String>>,
    max_items: usize,
    max_chars: usize,
) -> Vec<String> {
    let Some(raw) = raw else {
        violations.push(Violation::new(field, "required"));
        return Vec::new();
    };
    check_count(violations, field, raw.len(), 1, max_items);
    raw.iter()
        .take(max_items)
        .enumerate()
        .map(|(index, item)| {
            let item = item.trim().to_owned();
            check_text(violations, &format!("{field}[{index}]"), &item, max_chars);
            item
        })
        .collect()
}

/// Non-blank and at most `max_chars` characters (Unicode scalar values, so "Phở" is 3). True when valid.
fn check_text(violations: &mut Violations, field: &str, text: &str, max_chars: usize) -> bool {
    if text.is_empty() {
        violations.push(Violation::new(field, "blank"));
        return false;
    }
    if text.chars().count() > max_chars {
        violations.push(Violation::new(field, "too_long").with("max", max_chars));
        return false;
    }
    true
}

fn check_count(violations: &mut Violations, field: &str, count: usize, min: usize, max: usize) {
    if count < min {
        violations.push(Violation::new(field, "too_few_items").with("min", min));
    } else if count > max {
        violations.push(Violation::new(field, "too_many_items").with("max", max));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn valid_input() -> RecipeInput {
        RecipeInput {
            name: Some("  Phở bò  ".into()),
            tags: Some(strings(&[" Soup ", "vietnamese", "SOUP"])),
            ingredients: Some(strings(&["beef", " rice noodles "])),
            instructions: Some(strings(&["Simmer the broth."])),
        }
    }

    #[test]
    fn normalises_name_tags_and_items() {
        let draft = RecipeDraft::parse(valid_input()).expect("valid");
        assert_eq!(draft.name, "Phở bò");
        assert_eq!(draft.tags, strings(&["soup", "vietnamese"]));
        assert_eq!(draft.ingredients, strings(&["beef", "rice noodles"]));
    }

    #[test]
    fn reports_every_missing_field_at_once() {
        let violations = RecipeDraft::parse(RecipeInput::default()).expect_err("invalid");
        assert!(violations.contains("name", "required"));
        assert!(violations.contains("ingredients", "required"));
        assert!(violations.contains("instructions", "required"));
        assert_eq!(violations.len(), 3, "tags are optional: {violations}");
    }

    #[test]
    fn reports_blank_and_oversized_entries_with_their_paths() {
        let input = RecipeInput {
            name: Some("x".repeat(limits::NAME_MAX_CHARS + 1)),
            tags: Some(strings(&["ok", "   "])),
            ingredients: Some(strings(&["salt", " "])),
            instructions: Some(vec![]),
        };
        let violations = RecipeDraft::parse(input).expect_err("invalid");
        assert!(violations.contains("name", "too_long"));
        assert!(violations.contains("tags[1]", "blank"));
        assert!(violations.contains("ingredients[1]", "blank"));
        assert!(violations.contains("instructions", "too_few_items"));
    }

    #[test]
    fn name_length_counts_characters_not_bytes() {
        let input = RecipeInput { name: Some("ở".repeat(limits::NAME_MAX_CHARS)), ..valid_input() };
        assert!(RecipeDraft::parse(input).is_ok());
    }

    #[test]
    fn too_many_items_are_refused() {
        let input = RecipeInput {
            tags: Some((0..=limits::TAGS_MAX_ITEMS).map(|i| format!("t{i}")).collect()),
            ..valid_input()
        };
        let violations = RecipeDraft::parse(input).expect_err("invalid");
        assert!(violations.contains("tags", "too_many_items"));
    }

    #[test]
    fn oversized_lists_cost_little_and_report_little() {
        let input = RecipeInput {
            tags: Some((0..200_000).map(|i| format!("tag {i}")).collect()),
            ingredients: Some(vec![" ".to_owned(); 100_000]),
            ..valid_input()
        };
        let started = std::time::Instant::now();
        let violations = RecipeDraft::parse(input).expect_err("invalid");
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
        assert!(violations.contains("tags", "too_many_items"));
        assert!(violations.contains("ingredients", "too_many_items"));
        // Only the blanks among the first 100 ingredients are reported, and at most 50 are listed.
        assert_eq!(violations.len(), 2 + limits::INGREDIENTS_MAX_ITEMS, "{violations}");
        assert_eq!(violations.iter().count(), Violations::MAX_LISTED);
    }

    #[test]
    fn a_precondition_holds_for_any_listed_revision() {
        assert!(Precondition::Any.holds_for(Revision::new(9)));
        let listed = Precondition::OneOf(vec![Revision::new(1), Revision::new(4)]);
        assert!(listed.holds_for(Revision::new(4)), "a later tag of the list matches");
        assert!(!listed.holds_for(Revision::new(2)));
        assert!(!Precondition::OneOf(vec![]).holds_for(Revision::FIRST));
        assert!(listed.is_conditional() && !Precondition::Any.is_conditional());
    }

    #[test]
    fn ids_parse_only_from_uuids() {
        let id = RecipeId::generate();
        assert_eq!(id.to_string().parse::<RecipeId>(), Ok(id));
        assert_eq!("not-a-uuid".parse::<RecipeId>(), Err(InvalidRecipeId));
        assert_eq!("".parse::<RecipeId>(), Err(InvalidRecipeId));
    }

    #[test]
    fn revising_bumps_the_revision_and_keeps_identity() {
        let now = Utc::now();
        let draft = RecipeDraft::parse(valid_input()).expect("valid");
        let recipe = Recipe::publish(draft.clone(), None, now);
        let later = now + chrono::Duration::seconds(5);
        let revised = recipe.revise(draft, later);
        assert_eq!(revised.id, recipe.id);
        assert_eq!(revised.published_at, recipe.published_at);
        assert_eq!(revised.updated_at, later);
        assert_eq!(revised.revision, Revision::new(2));
    }

    #[test]
    fn search_text_is_lowercased_name_tags_and_ingredients() {
        let recipe = Recipe::publish(RecipeDraft::parse(valid_input()).expect("valid"), None, Utc::now());
        assert_eq!(recipe.search_text(), "phở bò\nsoup\nvietnamese\nbeef\nrice noodles");
    }
}
