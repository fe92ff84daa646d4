(function () {
  // One static explorer: the script sits inside the explorer's <div>, its frames in a JSON block.
  var root = document.currentScript.parentNode;
  var data = JSON.parse(root.querySelector('script.lx-data').textContent);
  var img = root.querySelector('img.lx-frame');
  var inputs = root.querySelectorAll('[data-control]');
  function index(el) { return el.type === 'checkbox' ? (el.checked ? 1 : 0) : parseInt(el.value, 10); }
  function update() {
    var key = [];
    inputs.forEach(function (el) {
      var i = index(el);
      key.push(i);
      var out = el.parentNode.querySelector('output');
      if (out) { out.textContent = data.labels[el.dataset.control][i]; }
      if (el.type === 'range') { el.setAttribute('aria-valuetext', data.labels[el.dataset.control][i]); }
    });
    var frame = data.frames[key.join('-')];
    if (frame !== undefined) {
      img.src = 'data:image/png;base64,' + data.images[frame];
      img.dataset.frame = key.join('-');
    }
  }
  inputs.forEach(function (el) {
    el.addEventListener('input', update);
    el.addEventListener('change', update);
  });
  root.classList.add('lx-ready');
})();
