//! Interactive installations: the agent asks the caller's questions on the
//! connection that asked for the install, and the answers go back on it.
//!
//! [`UpdateInstaller::install_interactive`](crate::UpdateInstaller::install_interactive)
//! declares that this client can answer. The agent believes that only of a
//! caller it sees as an interactive user (`wua context` shows how it sees
//! one); for anyone else an update that may ask something fails with
//! `WU_E_NO_INTERACTIVE_USER`. During the call, [`InstallEvent`]s reach
//! the program's callback, and the program sends [`UserReply`]s through
//! the sender of [`user_replies`], from any thread.

use openwua_model::operation::JobInfo;
use openwua_model::prompt::Question;
use serde::Deserialize;
use tokio::sync::mpsc;

/// What happens during an interactive installation.
#[derive(Debug)]
pub enum InstallEvent<'a> {
    /// The job, as it starts, at each step and completed.
    Progress(&'a JobInfo),
    /// An installer asks something; answer it with [`UserReply::Answer`]
    /// before its `timeout_seconds`, or its default (or an abort) is taken.
    Question(&'a Question),
    /// The last answer to a question did not fit it (not one of its
    /// choices, not yes or no): why. The question follows again.
    AnswerRefused(&'a str),
    /// Output of an installer that talks to a terminal (a pseudo-terminal
    /// the agent allocated): show it as it is.
    TerminalOutput(&'a [u8]),
    /// That installer's terminal closed: input goes nowhere now.
    TerminalClosed,
}

/// What the program sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserReply {
    /// The answer to a question; `None` takes its default.
    Answer {
        /// [`Question::id`].
        question_id: String,
        /// The answer.
        answer: Option<String>,
    },
    /// Keystrokes for the installer's terminal (a line ends with `\n`).
    TerminalInput(Vec<u8>),
    /// The size of the user's terminal, for the installer's (which starts
    /// at 80×24).
    ResizeTerminal {
        /// Lines.
        rows: u16,
        /// Columns.
        columns: u16,
    },
}

/// Sends [`UserReply`]s to a running interactive installation; usable from
/// any thread. Dropping every sender means no more replies will come.
pub type UserReplySender = mpsc::UnboundedSender<UserReply>;

/// The installation's end of [`user_replies`].
pub type UserReplyReceiver = mpsc::UnboundedReceiver<UserReply>;

/// A channel for the replies of one interactive installation.
pub fn user_replies() -> (UserReplySender, UserReplyReceiver) {
    mpsc::unbounded_channel()
}

/// One reply of an interactive `Install` or `Uninstall`: one of its fields.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InteractiveReply {
    #[serde(default)]
    pub job: Option<JobInfo>,
    #[serde(default)]
    pub question: Option<Question>,
    #[serde(default)]
    pub answer_refused: Option<String>,
    #[serde(default, with = "hex::serde")]
    pub terminal_output: Vec<u8>,
    #[serde(default)]
    pub terminal_closed: bool,
}
