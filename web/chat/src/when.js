// Dates as the chat shows them: a clock for today, "Yesterday", a short date
// further back; the full date and time for hover and long-press; and the
// label of a day separator in the message list.
const DAY = 86400000;

function dayStart(ts) {
  const d = new Date(ts);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

// 0 for today, 1 for yesterday... (calendar days, not 24-hour spans).
export function daysAgo(ts, now = Date.now()) {
  return Math.round((dayStart(now) - dayStart(ts)) / DAY);
}

export function sameDay(a, b) {
  return dayStart(a) === dayStart(b);
}

export function clock(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

// The conversation list: 14:05, Yesterday, Mon, 3 Mar (this year), 3/3/2024.
export function listTime(ts, now = Date.now()) {
  const n = daysAgo(ts, now);
  if (n <= 0) return clock(ts);
  if (n === 1) return 'Yesterday';
  const d = new Date(ts);
  if (n < 7) return d.toLocaleDateString([], { weekday: 'short' });
  if (d.getFullYear() === new Date(now).getFullYear()) return d.toLocaleDateString([], { day: 'numeric', month: 'short' });
  return d.toLocaleDateString();
}

// A day separator: Today, Yesterday, Monday, 3 March 2025.
export function dayLabel(ts, now = Date.now()) {
  const n = daysAgo(ts, now);
  if (n <= 0) return 'Today';
  if (n === 1) return 'Yesterday';
  return new Date(ts).toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
}

// Hover and long-press: Monday, 3 March 2025 at 14:05:09.
export function fullTime(ts) {
  return new Date(ts).toLocaleString([], {
    weekday: 'long', day: 'numeric', month: 'long', year: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

export function isoTime(ts) {
  return new Date(ts).toISOString();
}
