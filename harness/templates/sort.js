// Click a header of a table.sortable to sort its rows by that column; again to reverse. Cells that start
// with a number ("92.41 ± 0.12 (n=3)", "-0.5", "1.2e+06") sort as numbers, the others as text.
document.querySelectorAll("table.sortable").forEach(function (table) {
  var head = table.tHead;
  if (!head) return;
  Array.prototype.forEach.call(head.rows[head.rows.length - 1].cells, function (th, column) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(th.parentNode.cells, function (c) { c.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var key = function (row) {
        var text = row.cells[column] ? row.cells[column].textContent.trim() : "";
        var number = parseFloat(text.replace(/,/g, "").replace(/^\+/, ""));
        return isNaN(number) ? [1, text.toLowerCase()] : [0, number];
      };
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), order = x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
