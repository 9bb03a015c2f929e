// Search over every conversation (docs/chat-protocol.md, "Search"): the
// sidebar's list gives way to the results, newest first, 20 a page ("Load
// more" follows `next`). A result opens its conversation at that message.
// The matching is the server's (substring, any script); here the match is
// only marked in the text.
import { useEffect, useRef, useState } from 'react';
import { errorText } from './groups.js';
import { CloseIcon, SearchIcon } from './icons.jsx';
import { textBytes } from './im.js';
import { fullTime, isoTime, listTime } from './when.js';

// Lower case for ASCII only, as the server compares: the string keeps its
// length, so positions found in it hold in the original.
const fold = (s) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

/** `text` cut around the first match of `q` and split into [plain, match, …]. */
export function marked(text, q, room = 60) {
  const t = fold(text), k = fold(q);
  let from = 0;
  const first = t.indexOf(k);
  let prefix = '';
  if (first > room) {
    from = first - Math.floor(room / 2);
    // Not in the middle of a surrogate pair.
    if (/[\uDC00-\uDFFF]/.test(text[from])) from--;
    prefix = '…';
  }
  const parts = [];
  let at = from;
  for (let i = t.indexOf(k, from); k && i >= 0; i = t.indexOf(k, i + k.length)) {
    parts.push(text.slice(at, i), text.slice(i, i + k.length));
    at = i + k.length;
  }
  parts.push(text.slice(at));
  if (prefix) parts[0] = prefix + parts[0];
  return parts;
}

export function SearchPanel({ im, onClose, avatar }) {
  const [q, setQ] = useState('');
  const [res, setRes] = useState({ q: '', results: [], next: null, busy: false, error: null, done: false });
  const input = useRef(null);
  const gen = useRef(0);
  useEffect(() => { input.current?.focus(); }, []);
  const run = async (query, before = null) => {
    const my = ++gen.current;
    setRes((r) => ({ ...(before ? r : { results: [], next: null }), q: query, busy: true, error: null, done: !!before }));
    try {
      const page = await im.search(query, before);
      if (my !== gen.current) return;
      setRes((r) => ({
        q: query, results: before ? [...r.results, ...page.results] : page.results, next: page.next,
        busy: false, error: null, done: true,
      }));
    } catch (e) {
      if (my !== gen.current) return;
      setRes((r) => ({ ...r, busy: false, error: errorText(e), done: true }));
    }
  };
  const query = q.trim();
  const short = textBytes(query) < 2;
  const long = textBytes(query) > 100;
  // Results as one types, once it has stopped for a moment.
  useEffect(() => {
    if (short || long || query === res.q) return undefined;
    const t = setTimeout(() => run(query), 350);
    return () => clearTimeout(t);
  }, [query]); // eslint-disable-line react-hooks/exhaustive-deps
  const submit = (e) => {
    e.preventDefault();
    if (!short && !long) run(query);
  };
  const title = (conv) => {
    const c = im.convs.get(conv);
    return c ? im.title(c) : conv;
  };
  let state = null;
  if (!query) state = 'Search messages in all your conversations.';
  else if (short) state = 'Type at least 2 characters.';
  else if (long) state = 'That is too long to search for (100 bytes at most).';
  else if (res.error) state = null;
  else if (res.done && !res.busy && res.q === query && res.results.length === 0) state = `No messages found for “${query}”.`;
  return (
    <section className="search" aria-label="Search messages">
      <form className="new search-form" role="search" onSubmit={submit}
        onKeyDown={(e) => { if (e.key === 'Escape') { e.preventDefault(); onClose(); } }}>
        <label className="sr" htmlFor="search-q">Search messages</label>
        <span className="search-field">
          <SearchIcon size={18} />
          <input id="search-q" ref={input} type="search" placeholder="Search messages…" value={q}
            autoCapitalize="none" autoCorrect="off" enterKeyHint="search" aria-invalid={long}
            aria-describedby="search-state" onChange={(e) => setQ(e.target.value)} />
        </span>
        <button type="button" className="search-close" onClick={onClose} aria-label="Close the search" title="Close the search">
          <CloseIcon size={20} />
        </button>
      </form>
      <div id="search-state" className="search-state" role="status" aria-live="polite">
        {state}
        {res.busy && !res.results.length && 'Searching…'}
        {res.done && !res.busy && res.results.length > 0 && res.q === query && (
          <span className="sr">{res.results.length}{res.next ? ' or more' : ''} results</span>
        )}
      </div>
      {res.error && <p className="search-error" role="alert">{res.error}</p>}
      {res.results.length > 0 && !short && (
        <ul className="results" aria-label={`Results for ${res.q}`}>
          {res.results.map((m) => (
            <li key={`${m.conv}/${m.seq}`}>
              <button className="result" data-conv={m.conv} data-seq={m.seq}
                onClick={() => im.openAt(m.conv, m.seq)}>
                {avatar({ conv: m.conv })}
                <span className="conv-main">
                  <span className="conv-top">
                    <span className="conv-title">{title(m.conv)}</span>
                    <time className="conv-time" dateTime={isoTime(m.ts)} title={fullTime(m.ts)}>{listTime(m.ts)}</time>
                  </span>
                  <span className="result-text">
                    <span className="result-from">{m.from === im.uid ? 'You' : m.from}: </span>
                    {marked(m.text, res.q).map((part, i) => (i % 2 ? <mark key={i}>{part}</mark> : part))}
                  </span>
                </span>
              </button>
            </li>
          ))}
          {res.next && (
            <li className="more">
              <button className="load-more" disabled={res.busy} onClick={() => run(res.q, res.next)}>
                {res.busy ? 'Loading…' : 'Load more results'}
              </button>
            </li>
          )}
        </ul>
      )}
    </section>
  );
}
