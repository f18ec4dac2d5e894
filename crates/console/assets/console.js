// gridlease console: live updates over the console's own event stream (/events). Every page
// keeps its "Block N" link current; the chain page adds each new block at the top of its
// table. Text is set with textContent only: nothing from the chain becomes markup.
"use strict";
(function () {
  const tip = document.getElementById("tip");
  const table = document.querySelector("tbody[data-live=blocks]");
  const MAX_ROWS = 50;
  let source = null;
  let retry = 1000;

  function cell(row, text, href) {
    const td = document.createElement("td");
    if (href) {
      const a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
    row.appendChild(td);
    return td;
  }

  function onBlock(event) {
    let block;
    try {
      block = JSON.parse(event.data);
    } catch (_) {
      return;
    }
    if (typeof block.height !== "number") return;
    if (tip) {
      tip.textContent = String(block.height);
      tip.href = "/blocks/" + block.height;
      tip.dataset.height = String(block.height);
    }
    if (!table) return;
    if (table.querySelector('tr[data-height="' + block.height + '"]')) return;
    const row = document.createElement("tr");
    row.dataset.height = String(block.height);
    row.className = "fresh";
    cell(row, String(block.height), "/blocks/" + block.height);
    const time = document.createElement("time");
    time.dateTime = String(block.time);
    time.textContent = String(block.time);
    cell(row, "").appendChild(time);
    cell(row, String(block.txs));
    cell(row, String(block.events));
    // The same order as the server's: by count, the fee payments last.
    const kinds = Object.entries(block.types || {})
      .sort((a, b) => (a[0] === "fee_paid") - (b[0] === "fee_paid") || b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .map(([kind, n]) => kind + " \u00d7" + n)
      .join(", ");
    cell(row, kinds);
    table.insertBefore(row, table.firstChild);
    while (table.rows.length > MAX_ROWS) table.deleteRow(table.rows.length - 1);
  }

  function connect() {
    if (!("EventSource" in window)) return;
    source = new EventSource("/events");
    source.addEventListener("block", onBlock);
    source.onopen = function () { retry = 1000; };
    source.onerror = function () {
      source.close();
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }
  connect();
})();
