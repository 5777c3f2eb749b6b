//! Sample recipes written for Galley, stored on first start so a fresh install has something to show.

use galley_kernel::Violations;
use serde::Deserialize;

use crate::model::{RecipeDraft, RecipeInput};

const SAMPLE_RECIPES_JSON: &str = include_str!("../seed/recipes.json");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleRecipe {
    name: String,
    tags: Vec<String>,
    ingredients: Vec<String>,
    instructions: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("sample recipes are not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("sample recipe {index} breaks the rules: {violations}")]
    Invalid { index: usize, violations: Violations },
}

/// The bundled sample recipes, validated by the same rules as user input.
pub fn sample_recipes() -> Result<Vec<RecipeDraft>, SeedError> {
    let samples: Vec<SampleRecipe> = serde_json::from_str(SAMPLE_RECIPES_JSON)?;
    samples
        .into_iter()
        .enumerate()
        .map(|(index, sample)| {
            RecipeDraft::parse(RecipeInput {
                name: Some(sample.name),
                tags: Some(sample.tags),
                ingredients: Some(sample.ingredients),
                instructions: Some(sample.instructions),
            })
            .map_err(|violations| SeedError::Invalid { index, violations })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifty_valid_samples_with_unique_names() {
        let samples = sample_recipes().expect("samples are valid");
        assert_eq!(samples.len(), 50);
        let mut names: Vec<String> = samples.iter().map(|s| s.name().to_lowercase()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 50);
    }
}
