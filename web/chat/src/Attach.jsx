// Pictures and files in the chat UI (issue 18; the state is files.js):
//   AttachButton   the composer's paperclip and its file picker
//   StagedFiles    what is attached, waiting in the composer for Send (the
//                  text typed becomes the caption of the first file)
//   useAttachDrop  drag-and-drop onto the conversation and pasted pictures
//   sendAttached   the composer's submit when files are attached
//   MessageFile    the file part of a message bubble: the thumbnail (the
//                  original in a lightbox on click) or a card with a
//                  download link, and the upload's progress bar and cancel
// A file's name is always text (React escapes it), never markup or a path.
import { useEffect, useRef, useState } from 'react';
import { createPortal } from 'react-dom';
import { fileIcon, fileUrl, humanSize, isImage } from './files.js';

const Svg = ({ children, size = 22 }) => (
  <svg width={size} height={size} viewBox="0 0 24 24" fill="none" stroke="currentColor" strokeWidth="2"
    strokeLinecap="round" strokeLinejoin="round" aria-hidden="true" focusable="false">
    {children}
  </svg>
);
const ClipIcon = (p) => (
  <Svg {...p}><path d="m21 11.5-8.6 8.6a5.5 5.5 0 0 1-7.8-7.8l8.9-8.9a3.7 3.7 0 0 1 5.2 5.2l-8.9 8.9a1.8 1.8 0 0 1-2.6-2.6l8.2-8.2" /></Svg>
);
const XIcon = (p) => <Svg {...p}><path d="M6 6l12 12M18 6 6 18" /></Svg>;
const DownIcon = (p) => <Svg {...p}><path d="M12 4v11M7 10.5l5 5 5-5M5 20h14" /></Svg>;

/** The paperclip: opens the file picker; what is picked waits in the composer. */
export function AttachButton({ im, convId }) {
  const input = useRef(null);
  if (im.files.off()) return null;
  return (
    <>
      <button type="button" id="attach" className="attach-btn" onClick={() => input.current?.click()}
        aria-label="Attach pictures or files" title="Attach pictures or files">
        <ClipIcon />
      </button>
      <input ref={input} id="attach-input" type="file" multiple hidden tabIndex={-1} aria-label="Pictures or files to attach"
        onChange={(e) => {
          im.files.stage(convId, [...e.target.files]);
          e.target.value = ''; // the same file can be picked again
        }} />
    </>
  );
}

/** The files attached in the composer, with a way to take each back; and why some were not. */
export function StagedFiles({ im, convId }) {
  const list = im.files.stagedOf(convId);
  const notice = im.files.notice;
  if (!list.length && !notice) return null;
  return (
    <div className="staged" id="staged">
      {notice && (
        <p className="attach-notice" id="attach-notice" role="alert">
          <span>{notice}</span>
          <button type="button" className="attach-x" onClick={() => im.files.clearNotice()} aria-label="Dismiss">
            <XIcon size={16} />
          </button>
        </p>
      )}
      {list.length > 0 && (
        <ul className="staged-list" aria-label="Attached, sent with the next message">
          {list.map((s) => (
            <li key={s.key} className="staged-item" data-name={s.file.name}>
              {s.url ? <img src={s.url} alt="" /> : <span className="staged-icon" aria-hidden="true">{fileIcon(s.file.type)}</span>}
              <span className="staged-main">
                <span className="staged-name">{s.file.name}</span>
                <span className="staged-size">{humanSize(s.file.size)}</span>
              </span>
              <button type="button" className="attach-x" onClick={() => im.files.unstage(convId, s.key)}
                aria-label={`Remove ${s.file.name}`} title="Remove">
                <XIcon size={16} />
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** True when files wait in the composer of `convId` (Send is on without text). */
export function hasStaged(im, convId) {
  return im.files.stagedOf(convId).length > 0;
}

/**
 * The composer's submit with files attached: each file its own message, the
 * text as the caption of the first; false (nothing done) when none is.
 */
export function sendAttached(im, convId, text) {
  if (!hasStaged(im, convId)) return false;
  im.files.sendStaged(convId, text);
  im.setDraft(convId, '');
  return true;
}

// The files of a drop or a paste (a pasted text has none).
function filesOf(dt) {
  if (!dt) return [];
  if (dt.files && dt.files.length) return [...dt.files];
  return [...(dt.items || [])].filter((i) => i.kind === 'file').map((i) => i.getAsFile()).filter(Boolean);
}

const carriesFiles = (e) => [...(e.dataTransfer?.types || [])].includes('Files');

/**
 * Drag-and-drop onto the conversation and pictures pasted into it: the
 * props for its element, and the hint to show while files are over it.
 */
export function useAttachDrop(im, convId) {
  const [over, setOver] = useState(false);
  const depth = useRef(0);
  useEffect(() => {
    depth.current = 0;
    setOver(false);
  }, [convId]);
  const props = {
    onDragEnter: (e) => {
      if (!carriesFiles(e) || im.files.off()) return;
      e.preventDefault();
      depth.current++;
      setOver(true);
    },
    onDragOver: (e) => {
      if (!carriesFiles(e) || im.files.off()) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
    },
    onDragLeave: (e) => {
      if (!carriesFiles(e)) return;
      depth.current = Math.max(0, depth.current - 1);
      if (!depth.current) setOver(false);
    },
    onDrop: (e) => {
      const files = im.files.off() ? [] : filesOf(e.dataTransfer);
      depth.current = 0;
      setOver(false);
      if (!files.length) return;
      e.preventDefault();
      im.files.stage(convId, files);
    },
    onPaste: (e) => {
      const files = im.files.off() ? [] : filesOf(e.clipboardData);
      if (!files.length) return; // text: the input takes it
      e.preventDefault();
      im.files.stage(convId, files);
    },
  };
  const hint = over ? (
    <div className="drop-hint" id="drop-hint" aria-hidden="true">
      <div><ClipIcon size={34} /><p>Drop to attach</p></div>
    </div>
  ) : null;
  return { props, hint };
}

// The size a picture is shown at in the bubble: within 280×320 CSS px,
// its own proportions (known before it loads: no jump in the list).
function fit(w, h) {
  if (!(w > 0 && h > 0)) return null;
  const k = Math.min(1, 280 / w, 320 / h);
  return { w: Math.max(48, Math.round(w * k)), h: Math.max(48, Math.round(h * k)) };
}

/** The file part of message `m`'s bubble (nothing when it has none). */
export function MessageFile({ im, m }) {
  const [open, setOpen] = useState(false);
  const opener = useRef(null);
  const f = m.file;
  if (!f || m.recalled) return null;
  const stored = !!m.seq;
  const url = (id) => fileUrl(im.uid, m.conv, id);
  const local = stored ? null : im.files.preview(m.cid);
  // The bar while it goes up (or waits for the connection to go on); a
  // permanent failure has its Delete under the bubble instead.
  const progress = !stored && !(m.status === 'failed' && m.permanent) ? im.files.progress(m) : null;
  let body;
  if (isImage(f) && (stored ? f.id : local)) {
    const size = fit(f.w, f.h);
    const src = local || url(f.thumb || f.id);
    body = (
      <button type="button" className="att-pic" ref={opener} onClick={() => setOpen(true)}
        style={size ? { width: `${size.w}px`, aspectRatio: `${size.w} / ${size.h}` } : undefined}
        aria-label={`Open the picture ${f.name}`} aria-haspopup="dialog" data-thumb={f.thumb || ''}>
        <img src={src} alt={f.name} loading="lazy" decoding="async"
          width={size ? size.w : undefined} height={size ? size.h : undefined} />
      </button>
    );
  } else {
    const inner = (
      <>
        {stored && <span className="sr">Download </span>}
        <span className="att-icon" aria-hidden="true">{fileIcon(f.type)}</span>
        <span className="att-info">
          <span className="att-name">{f.name}</span>
          <span className="att-size">{humanSize(f.size)}</span>
        </span>
        {stored && <span className="att-dl" aria-hidden="true"><DownIcon size={20} /></span>}
      </>
    );
    body = stored ? (
      <a className="att-file" href={url(f.id)} download={f.name} data-file={f.id}>{inner}</a>
    ) : <div className="att-file">{inner}</div>;
  }
  return (
    <div className="att" data-file={f.id || ''}>
      {body}
      {progress && <Progress im={im} m={m} p={progress} />}
      {open && (
        <Lightbox name={f.name} src={stored ? url(f.id) : localOriginal(m)} download={stored ? url(f.id) : null}
          onClose={() => {
            setOpen(false);
            opener.current?.focus();
          }} />
      )}
    </div>
  );
}

// Our own picture before the server has it: the original from the File.
const originals = new WeakMap();
function localOriginal(m) {
  const blob = m.upload?.blob;
  if (!blob) return '';
  if (!originals.has(blob)) originals.set(blob, URL.createObjectURL(blob));
  return originals.get(blob);
}

function Progress({ im, m, p }) {
  const pct = p.total ? Math.floor((100 * p.sent) / p.total) : 0;
  const failed = m.status === 'failed';
  const label = failed ? 'not sent' : p.state === 'uploading' ? `${humanSize(p.sent)} of ${humanSize(p.total)}` : 'waiting to upload';
  return (
    <div className="att-progress" data-sent={p.sent} data-total={p.total} data-state={failed ? 'failed' : p.state}>
      <progress max={p.total || 1} value={p.sent} aria-label={`Uploading ${m.file.name}`}
        aria-valuetext={`${pct}% (${label})`} />
      <span className="att-pct">{failed ? label : `${pct}%`}</span>
      <button type="button" className="att-cancel" onClick={() => im.files.cancel(m)}
        aria-label={`Cancel sending ${m.file.name}`} title="Cancel">
        <XIcon size={16} />
      </button>
    </div>
  );
}

/** The original picture over the page: Esc, the close button or a click outside closes it. */
// The dialog closes itself (Esc, the button, a click beside the picture);
// its close event then unmounts it, when the page is no longer inert.
function Lightbox({ name, src, download, onClose }) {
  const ref = useRef(null);
  const closeBtn = useRef(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    closeBtn.current?.focus();
    // Unmounted, the dialog leaves the document and its top layer with it;
    // closing it here would fire `close` (StrictMode runs this twice).
  }, []);
  const close = () => ref.current?.close();
  // In <body>, not in the bubble (its styles), and its clicks stay here
  // (React would bubble them to the bubble, whose tap opens a menu).
  return createPortal(
    <dialog ref={ref} className="lightbox" id="lightbox" aria-label={name} onClose={onClose}
      onClick={(e) => {
        e.stopPropagation();
        if (e.target === ref.current || e.target.classList.contains('lightbox-stage')) close();
      }}>
      <div className="lightbox-bar">
        <span className="lightbox-name">{name}</span>
        {download && (
          <a className="lightbox-btn" href={download} download={name} aria-label={`Download ${name}`} title="Download">
            <DownIcon />
          </a>
        )}
        <button type="button" className="lightbox-btn" id="lightbox-close" onClick={close} ref={closeBtn}
          aria-label="Close the picture" title="Close (Esc)">
          <XIcon />
        </button>
      </div>
      <div className="lightbox-stage">
        <img src={src} alt={name} />
      </div>
    </dialog>,
    document.body,
  );
}
