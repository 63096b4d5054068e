//! Caption cues cut from the transcript's words by caption rules, as a pure function: what
//! `transcript.srt` and `transcript.vtt` hold.
//!
//! Caption guidelines (the BBC's, Netflix's timed-text style guide) ask for short lines, at
//! most two of them, cues between about one and seven seconds, and breaks where the speech
//! breaks. Cues are filled word by word; a cue ends before a word that would break a hard
//! rule (too many characters for its lines, too long on screen) — then, if the cue holds a
//! clause end (a comma, a colon), at the last one instead — and ends early after a sentence
//! or before a pause once it has been on screen long enough, and always before a silence
//! longer than that.

pub use echo_catalog::events::CaptionRules;
use echo_catalog::events::Word;

/// One caption: when it shows and its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cue {
    /// When it appears, ms from the start of the audio.
    pub start_ms: i64,
    /// When it disappears, ms from the start of the audio.
    pub end_ms: i64,
    /// Its text, wrapped: at most `max_lines` lines.
    pub lines: Vec<String>,
    /// Who says it, when the upload has a speaker per channel: a label shown with the
    /// cue (not counted in its lines' characters).
    pub speaker: Option<String>,
}

/// Cuts `words` (in time order, global times) into cues following `rules`.
pub fn cues(words: &[Word], rules: &CaptionRules) -> Vec<Cue> {
    let mut groups: Vec<&[Word]> = Vec::new();
    let mut from = 0;
    let mut i = 0;
    while i < words.len() {
        if i > from {
            let cue = &words[from..i];
            let with_next = &words[from..=i];
            let shown = |ws: &[Word]| ws[ws.len() - 1].end_ms - ws[0].start_ms;
            let last = &cue[cue.len() - 1];
            let long_enough = shown(cue) >= i64::from(rules.min_duration_ms);
            let too_much = wrap(&texts(with_next), rules).is_none()
                || shown(with_next) > i64::from(rules.max_duration_ms);
            let silence = words[i].start_ms - last.end_ms;
            let pause = silence >= i64::from(rules.pause_ms);
            // No cue stays up through a silence it could be read in on its own.
            let long_silence = silence >= i64::from(rules.min_duration_ms);
            if too_much {
                // Back to the last clause end in the second half of the cue, if any.
                let cut = (cue.len().div_ceil(2)..cue.len())
                    .rev()
                    .find(|&k| ends_clause(&cue[k - 1].text))
                    .unwrap_or(cue.len());
                groups.push(&words[from..from + cut]);
                from += cut;
                i = from.max(i);
                continue;
            }
            if long_silence || (long_enough && (pause || ends_sentence(&last.text))) {
                groups.push(cue);
                from = i;
            }
        }
        i += 1;
    }
    if from < words.len() {
        groups.push(&words[from..]);
    }

    let mut out: Vec<Cue> = Vec::with_capacity(groups.len());
    for (n, group) in groups.iter().enumerate() {
        let start_ms = group[0].start_ms.max(out.last().map_or(0, |c| c.end_ms));
        let spoken_end = group[group.len() - 1].end_ms.max(start_ms + 1);
        // Held up to the minimum, but gone before the next cue starts.
        let next_start = groups.get(n + 1).map_or(i64::MAX, |g| g[0].start_ms);
        let held = (start_ms + i64::from(rules.min_duration_ms)).min(next_start);
        let lines = wrap(&texts(group), rules).unwrap_or_else(|| vec![texts(group).join(" ")]);
        out.push(Cue {
            start_ms,
            end_ms: spoken_end.max(held),
            lines,
            speaker: None,
        });
    }
    out
}

fn texts(words: &[Word]) -> Vec<&str> {
    words.iter().map(|w| w.text.as_str()).collect()
}

/// Whether a word ends a sentence.
pub fn ends_sentence(word: &str) -> bool {
    word.trim_end_matches(['"', '\'', ')', '»', '”'])
        .ends_with(['.', '?', '!', '…'])
}

/// Whether a word ends a clause or a sentence: where a line or a cue breaks best.
fn ends_clause(word: &str) -> bool {
    ends_sentence(word) || word.ends_with([',', ';', ':', '—'])
}

/// `words` wrapped into at most `max_lines` lines of at most `max_chars_per_line` characters
/// (a word longer than a line alone on its own), lines as even as they can be and broken
/// after a clause end where that costs nothing; `None` if they do not fit.
fn wrap(words: &[&str], rules: &CaptionRules) -> Option<Vec<String>> {
    let limit = rules.max_chars_per_line as usize;
    let len = |ws: &[&str]| ws.iter().map(|w| w.chars().count()).sum::<usize>() + ws.len() - 1;
    let fits = |ws: &[&str]| ws.len() == 1 || len(ws) <= limit;
    // More letters than the lines hold (no word alone on a line past the limit): no split
    // can fit, so none is tried.
    let letters = words.iter().map(|w| w.chars().count());
    if letters.clone().all(|n| n <= limit)
        && letters.sum::<usize>() > limit * rules.max_lines as usize
    {
        return None;
    }
    // Fewest lines first; among splits into that many, the one whose longest line is
    // shortest, then the one with more breaks after a clause end.
    for lines in 1..=rules.max_lines as usize {
        let mut best: Option<(usize, usize, Vec<usize>)> = None; // (longest, -clauses, cuts)
        split(words.len(), lines, &mut Vec::new(), &mut |cuts| {
            let mut bounds = vec![0];
            bounds.extend_from_slice(cuts);
            bounds.push(words.len());
            let parts: Vec<&[&str]> = bounds.windows(2).map(|b| &words[b[0]..b[1]]).collect();
            if !parts.iter().all(|p| fits(p)) {
                return;
            }
            let longest = parts.iter().map(|p| len(p)).max().unwrap_or(0);
            let unclaused = cuts.iter().filter(|&&c| !ends_clause(words[c - 1])).count();
            // A clause break is worth up to 6 characters of imbalance.
            let score = longest + 6 * unclaused;
            if best.as_ref().is_none_or(|(s, _, _)| score < *s) {
                best = Some((score, longest, cuts.to_vec()));
            }
        });
        if let Some((_, _, cuts)) = best {
            let mut bounds = vec![0];
            bounds.extend(cuts);
            bounds.push(words.len());
            return Some(
                bounds
                    .windows(2)
                    .map(|b| words[b[0]..b[1]].join(" "))
                    .collect(),
            );
        }
    }
    None
}

/// Calls `each` with every way of cutting `n` words into `parts` non-empty lines (the cut
/// positions, ascending).
fn split(n: usize, parts: usize, cuts: &mut Vec<usize>, each: &mut dyn FnMut(&[usize])) {
    if parts == 1 {
        if n > cuts.last().copied().unwrap_or(0) {
            each(cuts);
        }
        return;
    }
    let from = cuts.last().copied().unwrap_or(0) + 1;
    for cut in from..n {
        cuts.push(cut);
        split(n, parts - 1, cuts, each);
        cuts.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words of `text` spoken one after another, each `ms` long with `gap` ms between.
    fn spoken(text: &str, from_ms: i64, ms: i64, gap: i64) -> Vec<Word> {
        text.split_whitespace()
            .enumerate()
            .map(|(i, w)| {
                let start_ms = from_ms + i as i64 * (ms + gap);
                Word {
                    start_ms,
                    end_ms: start_ms + ms,
                    text: w.into(),
                    confidence: 0.9,
                }
            })
            .collect()
    }

    fn text(cue: &Cue) -> String {
        cue.lines.join(" ")
    }

    /// Every rule a cue must follow, checked on every cue.
    fn assert_rules(cues: &[Cue], rules: &CaptionRules) {
        for (i, cue) in cues.iter().enumerate() {
            assert!(cue.lines.len() <= rules.max_lines as usize, "{cue:?}");
            for line in &cue.lines {
                let one_word = !line.contains(' ');
                assert!(
                    one_word || line.chars().count() <= rules.max_chars_per_line as usize,
                    "{line:?} is too long"
                );
            }
            assert!(cue.end_ms > cue.start_ms, "{cue:?}");
            assert!(
                cue.end_ms - cue.start_ms <= i64::from(rules.max_duration_ms),
                "{cue:?} stays too long"
            );
            if let Some(next) = cues.get(i + 1) {
                assert!(cue.end_ms <= next.start_ms, "{cue:?} overlaps {next:?}");
            }
        }
    }

    const STORY: &str = "The old lighthouse keeper climbed the stairs every evening, counting \
        each step aloud. Nobody in the village knew why he did it, but everyone had heard him. \
        On the night of the storm, he stopped at step ninety and listened to the sea. Then \
        he went on, slower than before, until the lamp was lit.";

    #[test]
    fn every_cue_of_continuous_speech_follows_the_rules() {
        let rules = CaptionRules::default();
        let words = spoken(STORY, 0, 300, 80);
        let cues = cues(&words, &rules);
        assert_rules(&cues, &rules);
        // Nothing lost, nothing repeated, in order.
        let all: Vec<String> = cues.iter().map(text).collect();
        assert_eq!(
            all.join(" "),
            STORY.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        // Sentences end cues: no cue runs on past a full stop once it is long enough.
        for cue in &cues {
            let t = text(cue);
            let inner = t.split_whitespace().rev().skip(1).any(ends_sentence);
            assert!(!inner || cue.end_ms - cue.start_ms < 1_000, "{t:?}");
        }
        // Narrower rules are followed too.
        let narrow = CaptionRules {
            max_chars_per_line: 20,
            max_lines: 1,
            max_duration_ms: 3_000,
            ..rules
        };
        assert_rules(&super::cues(&words, &narrow), &narrow);
    }

    #[test]
    fn a_full_cue_breaks_at_its_last_clause_end_and_lines_are_balanced() {
        let rules = CaptionRules::default();
        // 90 characters without a sentence end: one comma, in the second half.
        let said = "we walked along the river and over the hills to the little town, where \
                    the market was already closing";
        let cues = cues(&spoken(said, 0, 200, 50), &rules);
        assert_eq!(
            text(&cues[0]),
            "we walked along the river and over the hills to the little town,"
        );
        assert_eq!(cues[0].lines.len(), 2);
        let (a, b) = (cues[0].lines[0].len(), cues[0].lines[1].len());
        assert!(a.abs_diff(b) <= 12, "{:?}", cues[0].lines);
        assert_eq!(text(&cues[1]), "where the market was already closing");
    }

    #[test]
    fn a_pause_ends_a_cue_and_a_short_cue_is_held_until_the_next() {
        let rules = CaptionRules::default();
        let mut words = spoken("Yes", 0, 300, 0);
        words.extend(spoken("and then we left", 2_000, 300, 50));
        words.extend(spoken("Quietly", 2_000 + 4 * 350 + 600, 400, 0));
        let cues = cues(&words, &rules);
        let texts: Vec<String> = cues.iter().map(text).collect();
        assert_eq!(texts, ["Yes", "and then we left", "Quietly"]);
        // "Yes" is 300 ms: held to the minimum of 1 s (the next cue starts at 2 s).
        assert_eq!((cues[0].start_ms, cues[0].end_ms), (0, 1_000));
        // "and then we left" is 1.35 s long: ends with its last word.
        assert_eq!((cues[1].start_ms, cues[1].end_ms), (2_000, 3_350));
        // The last cue is held to the minimum.
        assert_eq!((cues[2].start_ms, cues[2].end_ms), (4_000, 5_000));
        assert_rules(&cues, &rules);
    }

    #[test]
    fn a_cue_too_long_on_screen_is_cut() {
        let rules = CaptionRules::default();
        // Slow speech: 1.2 s a word, short words, so only the duration rule can cut.
        let words = spoken("a b c d e f g h i j k l", 0, 1_000, 200);
        let cues = cues(&words, &rules);
        assert!(cues.len() >= 2);
        assert_rules(&cues, &rules);
    }

    #[test]
    fn wrapping_prefers_few_lines_then_even_ones() {
        let rules = CaptionRules::default();
        assert_eq!(wrap(&["short", "line"], &rules).unwrap(), ["short line"]);
        let words: Vec<&str> = "one two three four five six seven eight nine ten eleven"
            .split(' ')
            .collect();
        let lines = wrap(&words, &rules).unwrap();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.len() <= 42));
        let long = ["x"; 60];
        assert!(wrap(&long, &rules).is_none());
        assert_eq!(
            wrap(
                &["Pneumonoultramicroscopicsilicovolcanoconiosis-like"],
                &rules
            )
            .unwrap()
            .len(),
            1
        );
        assert!(cues(&[], &rules).is_empty());
    }

    #[test]
    fn rules_that_cannot_work_are_named() {
        assert!(CaptionRules::default().problem().is_none());
        let bad = CaptionRules {
            min_duration_ms: 9_000,
            ..CaptionRules::default()
        };
        assert!(bad.problem().unwrap().contains("min_duration_ms"));
    }
}
