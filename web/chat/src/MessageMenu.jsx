// The menu of one of our own messages: Edit (text messages) and Recall
// (within the server's window). Opened by its ⋯ button (hover or focus on a
// desktop, Enter/Space from the keyboard), a right click, or on a phone a tap
// or long press on the bubble (the parent's `open`). Arrow keys move between
// the items, Esc closes and gives the focus back to the button.
import { useEffect, useRef, useState } from 'react';
import { EditIcon, MoreIcon, RecallIcon } from './icons.jsx';

export function MessageMenu({ im, m, open, setOpen, onEdit, onRecall }) {
  const btn = useRef(null);
  const menu = useRef(null);
  const canEdit = im.canEdit(m);
  const canRecall = im.canRecall(m);
  const [up, setUp] = useState(false);
  useEffect(() => {
    if (!open) return undefined;
    // Near the bottom of the list the menu opens upwards.
    const r = btn.current?.closest('li')?.getBoundingClientRect();
    const list = btn.current?.closest('.msgs')?.getBoundingClientRect();
    setUp(!!(r && list && list.bottom - r.bottom < 110));
    menu.current?.querySelector('[role="menuitem"]')?.focus();
    const away = (e) => {
      if (!menu.current?.contains(e.target) && !btn.current?.contains(e.target)) setOpen(false);
    };
    document.addEventListener('pointerdown', away);
    return () => document.removeEventListener('pointerdown', away);
  }, [open, setOpen]);
  if (!canEdit && !canRecall) return null;
  const close = (refocus) => {
    setOpen(false);
    if (refocus) btn.current?.focus();
  };
  const onKey = (e) => {
    const items = [...menu.current.querySelectorAll('[role="menuitem"]')];
    const i = items.indexOf(document.activeElement);
    if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); close(true); }
    else if (e.key === 'ArrowDown') { e.preventDefault(); items[(i + 1) % items.length].focus(); }
    else if (e.key === 'ArrowUp') { e.preventDefault(); items[(i - 1 + items.length) % items.length].focus(); }
    else if (e.key === 'Home') { e.preventDefault(); items[0].focus(); }
    else if (e.key === 'End') { e.preventDefault(); items.at(-1).focus(); }
    else if (e.key === 'Tab') close(false);
  };
  const id = `menu-${m.cid}`;
  return (
    <>
      <button ref={btn} className="msg-more" aria-haspopup="menu" aria-expanded={open} aria-controls={open ? id : undefined}
        aria-label="Message actions" title="Message actions" onClick={() => setOpen(!open)}>
        <MoreIcon size={18} />
      </button>
      {open && (
        <div ref={menu} className={up ? 'msg-menu up' : 'msg-menu'} role="menu" id={id} aria-label="Message actions" onKeyDown={onKey}>
          {canEdit && (
            <button role="menuitem" className="menu-edit" onClick={() => { close(false); onEdit(m); }}>
              <EditIcon size={18} /> Edit
            </button>
          )}
          {canRecall && (
            <button role="menuitem" className="menu-recall" onClick={() => { close(false); onRecall(m); }}>
              <RecallIcon size={18} /> Recall
            </button>
          )}
        </div>
      )}
    </>
  );
}
