//! Questions an interactive installer asks, and what the agent streams to
//! the one connection that asked for the install (`docs/prompts.md`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What sort of answer a question wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum QuestionKind {
    /// Free text on one line.
    Text,
    /// One of [`Question::choices`].
    Choice,
    /// `true` or `false`.
    Boolean,
    /// Free text that is not echoed or logged.
    Password,
    /// Something to read; the answer is only an acknowledgement.
    Note,
}

/// One question from an installer (`source` says which way it came).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Question {
    /// Unique within the job (`q1`, `q2`, …): what an answer names.
    pub id: String,
    /// What sort of answer it wants.
    pub kind: QuestionKind,
    /// The question, possibly several lines.
    pub text: String,
    /// The possible answers, for [`QuestionKind::Choice`] only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// What is answered when nobody does (timeout, disconnect, "default").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// How long the agent waits for an answer.
    pub timeout_seconds: u64,
    /// `installer` (the `command` handler's answer channel) or `debconf`.
    pub source: String,
    /// The update whose installer asks.
    pub update_id: Uuid,
}

/// One streamed event for the connection that asked for an interactive
/// install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PromptEvent {
    /// A question waiting for an answer.
    Question(Question),
    /// Bytes the installer wrote to its pseudo-terminal (hexadecimal on the
    /// wire).
    TerminalOutput(Vec<u8>),
    /// The installer's pseudo-terminal is gone: nothing more will be shown
    /// or read from it.
    TerminalClosed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_and_events_have_stable_json() {
        let question = Question {
            id: "q1".into(),
            kind: QuestionKind::Choice,
            text: "Which edition?".into(),
            choices: vec!["home".into(), "pro".into()],
            default: Some("home".into()),
            timeout_seconds: 300,
            source: "installer".into(),
            update_id: Uuid::nil(),
        };
        let json = serde_json::to_value(PromptEvent::Question(question.clone())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"question": {
                "id": "q1", "kind": "choice", "text": "Which edition?",
                "choices": ["home", "pro"], "default": "home", "timeoutSeconds": 300,
                "source": "installer", "updateId": "00000000-0000-0000-0000-000000000000"
            }})
        );
        let back: PromptEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, PromptEvent::Question(question));
        assert_eq!(
            serde_json::to_value(PromptEvent::TerminalClosed).unwrap(),
            serde_json::json!("terminalClosed")
        );
        assert_eq!(
            serde_json::to_value(PromptEvent::TerminalOutput(b"ok".to_vec())).unwrap(),
            serde_json::json!({"terminalOutput": [111, 107]})
        );
    }
}
