//! The demo's second simulated judge, which answer length alone cannot satisfy: it prefers the answer that takes
//! up more of the prompt's own content words (on topic), so a policy that wins the concise rule by saying
//! nothing loses here. Between the two judges a policy has to be short *and* on topic.

use std::collections::HashSet;

/// Words too common to show that an answer is about the prompt.
const STOP: [&str; 24] = [
    "what", "which", "when", "where", "does", "with", "that", "this", "from", "have", "your", "about",
    "would", "could", "should", "there", "their", "they", "them", "then", "than", "into", "some", "explain",
];

/// The lower-case alphabetic words of at least four letters that are not stop words.
fn content_words(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphabetic())
        .filter(|w| w.chars().count() >= 4)
        .map(str::to_lowercase)
        .filter(|w| !STOP.contains(&w.as_str()))
        .collect()
}

/// Higher is better: how many of the prompt's content words the answer uses (a word counts once; its plural
/// or other endings count as the same word by a shared five-letter stem). Unfinished answers are worst.
pub fn on_topic(prompt: &str, answer: &str, finished: bool) -> i64 {
    if !finished {
        return -1;
    }
    let stem = |w: &str| w.chars().take(5).collect::<String>();
    let asked: HashSet<String> = content_words(prompt).iter().map(|w| stem(w)).collect();
    let said: HashSet<String> = content_words(answer).iter().map(|w| stem(w)).collect();
    asked.intersection(&said).count() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_judge_counts_the_prompts_content_words_in_the_answer_and_ignores_length() {
        let p = "Why is the sky blue during the day?";
        assert_eq!(on_topic(p, "Sunlight scatters: blue light scatters most across the sky.", true), 1);
        assert_eq!(on_topic(p, "The sky looks blue by day.", true), 1);
        assert_eq!(on_topic(p, "Yes.", true), 0);
        let long = "It is a very long answer that goes on and on about nothing in particular at all.";
        assert_eq!(on_topic(p, long, true), 0, "length alone earns nothing");
        assert_eq!(on_topic(p, "The sky is blue", false), -1);
        // Stems: "planets" answers "planet"; stop words do not count.
        assert_eq!(
            on_topic("Explain which planet is largest", "Jupiter is the largest of the planets", true),
            2
        );
    }
}
