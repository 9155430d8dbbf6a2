//! A job's progress on standard error: a bar when it is a terminal (bytes
//! for a download, percent and the current update's title for an
//! installation), else plain lines, at most one per update per tenth.

use std::collections::HashMap;
use std::io::IsTerminal;

use crate::text;
use indicatif::{ProgressBar, ProgressStyle};
use openwua_model::operation::{JobInfo, JobKind, JobState};
use uuid::Uuid;

const DOWNLOAD_TEMPLATE: &str = "{msg} [{bar:30}] {bytes}/{total_bytes} {eta}";
const INSTALL_TEMPLATE: &str = "{msg} [{bar:30}] {pos}%";

/// Where one update stands, for one line or the bar's message.
struct Step {
    index: u32,
    id: Option<Uuid>,
    percent: u32,
}

/// Shows one job's replies as they come. Dropping it clears the bar.
pub struct Progress {
    titles: HashMap<Uuid, String>,
    terminal: bool,
    bar: Option<ProgressBar>,
    started: bool,
    /// The update and tenth of the last plain line.
    last: Option<(u32, u32)>,
    /// The update whose installer has the screen (it asked something or
    /// talks to its terminal): no progress is drawn until the next one.
    gave_way: Option<u32>,
    /// The update the last reply was about.
    current: u32,
}

impl Progress {
    /// Progress for a job of updates with these titles (an update without
    /// one is shown by its ID).
    pub fn new(titles: HashMap<Uuid, String>) -> Progress {
        Progress {
            titles,
            terminal: std::io::stderr().is_terminal(),
            bar: None,
            started: false,
            last: None,
            gave_way: None,
            current: 0,
        }
    }

    /// Shows one reply: the job as it started, at a step, or completed.
    pub fn show(&mut self, job: &JobInfo) {
        if !self.started {
            self.started = true;
            // The ID lets a user follow the job from elsewhere.
            eprintln!("wua: {} job {}", job.kind.verb(), job.job_id);
        }
        if job.state == JobState::Completed {
            self.clear();
            return;
        }
        let count = job.update_ids.len();
        let (step, position, length) =
            match (job.kind, &job.download_progress, &job.installation_progress) {
                (JobKind::Download, Some(progress), _) => (
                    Step {
                        index: progress.current_update_index,
                        id: progress.current_update_id,
                        percent: progress.current_update_percent_complete,
                    },
                    progress.total_bytes_downloaded,
                    progress.total_bytes_to_download,
                ),
                (JobKind::Install | JobKind::Uninstall, _, Some(progress)) => (
                    Step {
                        index: progress.current_update_index,
                        id: progress.current_update_id,
                        percent: progress.current_update_percent_complete,
                    },
                    u64::from(progress.percent_complete),
                    100,
                ),
                _ => return,
            };
        self.current = step.index;
        if self.gave_way == Some(step.index) {
            return;
        }
        let id = step
            .id
            .or_else(|| job.update_ids.get(step.index as usize).copied());
        let title = id.map_or_else(String::new, |id| {
            self.titles
                .get(&id)
                .cloned()
                .unwrap_or_else(|| id.to_string())
        });
        let what = format!(
            "{}ing {}/{count} {}",
            job.kind.verb(),
            step.index + 1,
            text::line(&title)
        );
        if self.terminal {
            let bar = self.bar.get_or_insert_with(|| new_bar(job.kind));
            bar.set_length(length);
            bar.set_position(position);
            bar.set_message(what);
        } else {
            let tenth = step.percent.min(100) / 10;
            let due = match self.last {
                Some((index, last)) => index != step.index || tenth > last,
                None => true,
            };
            if due {
                self.last = Some((step.index, tenth));
                eprintln!("{what} {}%", step.percent.min(100));
            }
        }
    }

    /// Clears the bar and runs `show` (a question, an installer's terminal
    /// output), which then has the screen: the bar is not drawn again
    /// until the next update, so it never lands in the middle of an
    /// installer's prompt.
    pub fn give_way(&mut self, show: impl FnOnce()) {
        self.clear();
        self.gave_way = Some(self.current);
        show();
    }

    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

fn new_bar(kind: JobKind) -> ProgressBar {
    let template = match kind {
        JobKind::Download => DOWNLOAD_TEMPLATE,
        JobKind::Install | JobKind::Uninstall => INSTALL_TEMPLATE,
    };
    let style = ProgressStyle::with_template(template).map_or_else(
        |_| ProgressStyle::default_bar(),
        |style| style.progress_chars("=> "),
    );
    ProgressBar::new(0).with_style(style)
}
