// The console's live view: adds each call to the table as the server sends it. Text only
// (textContent): no field of a record ever becomes markup.
(function () {
  "use strict";
  var table = document.getElementById("live-calls");
  var state = document.getElementById("live-state");
  if (!table || !window.EventSource) {
    return;
  }
  var source = new EventSource(table.getAttribute("data-events"));
  source.onopen = function () { state.textContent = "connected"; };
  source.onerror = function () { state.textContent = "reconnecting"; };
  source.onmessage = function (event) {
    var record = JSON.parse(event.data);
    var row = document.createElement("tr");
    row.className = "live-record";
    ["time", "kind", "user", "agent", "tool", "decision", "layer", "outcome"].forEach(function (field) {
      var cell = document.createElement("td");
      cell.className = field;
      cell.textContent = record[field] || "";
      row.appendChild(cell);
    });
    var head = table.querySelector("tr");
    head.parentNode.insertBefore(row, head.nextSibling);
    var rows = table.querySelectorAll("tr.live-record");
    if (rows.length > 200) {
      rows[rows.length - 1].remove();
    }
  };
})();
