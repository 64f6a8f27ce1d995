['runs', 'benchmark'].forEach(function(id){
  var table = document.getElementById(id);
  if (!table) return;
  function key(td){ var v = td.getAttribute('data-value'); return v === null ? td.textContent : v; }
  function sortBy(col, desc){
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    var th = table.tHead.rows[0].cells[col], num = th.getAttribute('data-kind') === 'num';
    rows.sort(function(a, b){
      var x = key(a.cells[col]), y = key(b.cells[col]);
      if (num){ x = x === '' ? NaN : parseFloat(x); y = y === '' ? NaN : parseFloat(y);
        if (isNaN(x) && isNaN(y)) return 0; if (isNaN(x)) return 1; if (isNaN(y)) return -1;
        return desc ? y - x : x - y; }
      return desc ? String(y).localeCompare(String(x)) : String(x).localeCompare(String(y));
    });
    rows.forEach(function(r){ body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function(c){ c.classList.remove('sorted-asc', 'sorted-desc'); });
    th.classList.add(desc ? 'sorted-desc' : 'sorted-asc');
    table.setAttribute('data-sorted', th.getAttribute('data-key') + (desc ? ':desc' : ':asc'));
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function(th, col){
    th.addEventListener('click', function(){ sortBy(col, th.classList.contains('sorted-asc')); });
  });
  var m = /sort=(-?)([\w:.+-]+)/.exec(location.hash);
  if (m){ Array.prototype.forEach.call(table.tHead.rows[0].cells, function(th, col){
    if (th.getAttribute('data-key') === m[2]) sortBy(col, m[1] === '-'); }); }
});
