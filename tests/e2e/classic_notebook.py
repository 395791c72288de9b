"""A classic-era notebook (2014-2018 style): jQuery, ``var`` globals, ``onclick``
attributes, ``require([...])``, ``IPython.notebook.*``. The same cells run in the
classic notebook (nbclassic, the reference) and, after ``%load_ext ipybridge``,
in JupyterLab 4 and Notebook 7; the tests compare what each page reaches.

Every check writes what it saw into the page (an element with an ``id``) or
into a kernel variable a later cell prints, as the scripts of those years did.
"""

from __future__ import annotations

LOAD = "%load_ext ipybridge"

# 1. jQuery, the first smallest input: clicking shows 42.
JQUERY_FORM = """from IPython.display import HTML
HTML(\'\'\'<input id="n" value="7"><button onclick="go()">go</button><span id="r"></span>
<script>
function go() {
  IPython.notebook.kernel.execute("r = int('" + $('#n').val() + "') * 6",
    {iopub: {output: function (m) { $('#r').text(m.content.data['text/plain']); }}},
    {silent: false});
  IPython.notebook.kernel.execute("r", {iopub: {output: function (m) {
    $('#r').text(m.content.data['text/plain']); }}}, {silent: false});
}
</script>\'\'\')"""

# 2. RequireJS and the notebook's name (smallest input 2).
REQUIRE_NAME = """%%javascript
require(['base/js/namespace'], function (Jupyter) {
  Jupyter.notebook.kernel.execute("nb_name = '" + Jupyter.notebook.notebook_name + "'");
});"""
PRINT_NAME = "print(nb_name)"

# 4. A function defined by %%javascript, called by a later output's onclick (smallest input 3).
DEFINE_LABEL = """%%javascript
window.label = function (k) { IPython.notebook.kernel.execute("last_key = " + k); };"""
LABEL_BUTTON = "HTML('<button onclick=\"label(3)\">3</button>')"
PRINT_LABEL = "print(last_key)"

# 1 + 4 + 2: a labelling tool as people wrote them: $(document).ready, built elements,
# $.each, event binding, $.ajax to the notebook server, a `var` global that another
# output's script uses, define()/require() of the page's own module.
LABELLER = r'''HTML("""
<div id="labeller"><b>Label the samples</b><ul id="samples"></ul><div id="ajax"></div></div>
<script type="text/javascript">
var LABELS = ['cat', 'dog', 'bird'];          // a page global, used by the next output
var chosen = {};
define('labeller/store', ['jquery'], function ($) {
  return {save: function (k, v) { chosen[k] = v; $('#samples').attr('data-count', Object.keys(chosen).length); }};
});
requirejs.config({map: {'*': {store: 'labeller/store'}}});
$(document).ready(function () {
  $.each(['s1', 's2'], function (i, name) {
    var li = $('<li>').attr('id', 'sample-' + name).text(name + ': ').appendTo('#samples');
    $.each(LABELS, function (j, label) {
      $('<button>').addClass('pick').attr('id', 'pick-' + name + '-' + label).text(label)
        .on('click', function () {
          require(['store'], function (store) {
            store.save(name, label);
            IPython.notebook.kernel.execute("labels = " + JSON.stringify(JSON.stringify(chosen)));
          });
        }).appendTo(li);
    });
  });
  $.ajax({url: IPython.notebook.base_url + 'api/contents/' + encodeURI(IPython.notebook.notebook_path),
          dataType: 'json'}).done(function (model) { $('#ajax').text('type=' + model.type); });
});
</script>
""")'''
USE_GLOBAL = r'''HTML("""<span id="global-labels"></span>
<script>$('#global-labels').text(LABELS.join('/') + ' ' + typeof chosen);</script>""")'''
PRINT_LABELS = "print(labels)"

# 5. The classic page's DOM: `element` (jQuery) and `this` in %%javascript; the cell index
# found with the classic snippet; #notebook_name.
ELEMENT_AND_THIS = """%%javascript
element.append($('<span id="from-element">').text('element is jQuery: ' + (element.jquery !== undefined)));
var output_area = this;
var cell_element = output_area.element.parents('.cell');
var cell_idx = Jupyter.notebook.get_cell_elements().index(cell_element);
IPython.notebook.kernel.execute("cell_idx = " + cell_idx + "; dom_name = '" + $('#notebook_name').text() + "'");"""
PRINT_DOM = "print(cell_idx, dom_name)"

# 6. parent.IPython from an output's iframe.
IFRAME = r'''HTML("""<iframe id="frame" style="height: 60px" srcdoc="<button id='in-frame' onclick=&quot;parent.IPython.notebook.kernel.execute('from_iframe = 6 * 7')&quot;>send</button>"></iframe>""")'''
PRINT_IFRAME = "print(from_iframe)"

# 3 + 8. Notebook API: cells, selection, metadata, hiding an input, keyboard manager,
# events, saving; members ipybridge lacks throw naming themselves.
NOTEBOOK_API = r'''HTML("""<pre id="api"></pre><button id="save" onclick="saveIt()">save</button>
<script>
IPython.notebook.events.on('kernel_ready.Kernel', function () {
  $('#api').attr('data-ready', +($('#api').attr('data-ready') || 0) + 1);
});
$([IPython.events]).on('kernel_ready.Kernel', function () { $('#api').attr('data-ready-1x', 'yes'); });
require(['base/js/events'], function (events) {
  events.on('kernel_restarting.Kernel', function () { $('#api').attr('data-restarting', 'yes'); });
});
function saveIt() {
  IPython.notebook.events.one('notebook_saved.Notebook', function () { $('#api').attr('data-saved', 'yes'); });
  IPython.notebook.save_notebook();
}
(function () {
  var nb = IPython.notebook, out = {};
  var cells = nb.get_cells();
  out.ncells = cells.length;
  out.first = nb.get_cell(0).get_text();
  out.types = $.map(cells, function (c) { return c.cell_type; }).join(',');
  out.selected_is_cell = nb.find_cell_index(nb.get_selected_cell()) === nb.get_selected_index();
  out.same_object = nb.get_cell(1) === cells[1];
  out.out_of_range = nb.get_cell(999);
  nb.get_cell(0).metadata.classic_tag = 'set from js';
  nb.metadata.labelling = {done: true};
  out.metadata = nb.get_cell(0).metadata.classic_tag;
  nb.get_cell(2).input.hide();
  out.hidden = !nb.get_cell(2).input.is(':visible');
  IPython.keyboard_manager.disable();
  IPython.keyboard_manager.enable();
  out.base_url = nb.base_url;
  out.path_ends = nb.notebook_path.slice(-6);
  out.kernel_events = typeof nb.events.on;
  var was = nb.get_selected_index();
  nb.select(3);
  nb.select_next();
  out.next = nb.get_selected_index();
  nb.select_prev().select_prev();
  out.prev = nb.get_selected_index();
  out.sel_indices = nb.get_selected_cells_indices();
  out.sel_text = nb.get_selected_cells()[0].get_text();
  nb.select(was);
  nb.set_dirty(true);
  out.dirty = nb.dirty;
  try { var x = IPython.notebook.undelete_cell; out.missing = 'read ' + x; } catch (e) { out.missing = e.message; }
  try { nb.kernel.comm_manager.register_target('x', function () {}); out.comm = 'no error'; } catch (e) { out.comm = e.message; }
  $('#api').text(JSON.stringify(out));
})();
</script>""")'''

# `%autosave 0`, which many course notebooks start with: its script calls the classic notebook.
AUTOSAVE = "%autosave 0"

# 3. Running cells from a button, as the classic notebook did: the cells below run, visibly.
RUN_BELOW = r'''HTML("""<button id="run-below" onclick="IPython.notebook.execute_cells_below()">Run the cells below</button>""")'''
BELOW_1 = "below = globals().get('below', 0) + 1\nprint('below ran', below)"
BELOW_2 = "print('second below ran', below)"

# 7. JavaScript displayed from a widget callback lands in the widget's cell and runs there.
WIDGET_CALLBACK = r"""import ipywidgets as widgets
from IPython.display import display, Javascript
clicks = widgets.Button(description="Clicked from a widget")
def on_click(b):
    display(Javascript("element.text('callback ran ' + typeof IPython.notebook.kernel.execute);"))
clicks.on_click(on_click)
clicks"""

# 9. Comms, as the notebook docs taught them: the page registers a target the kernel opens a
# comm to (ipykernel.comm.Comm), and opens a comm to a target the kernel registered.
COMM_TARGET = """%%javascript
element.append('<pre id="comm-log"></pre>');
Jupyter.notebook.kernel.comm_manager.register_target('my_comm_target', function (comm, msg) {
  $('#comm-log').append('open ' + JSON.stringify(msg.content.data) + ';');
  comm.on_msg(function (msg) {
    $('#comm-log').append('msg ' + JSON.stringify(msg.content.data) + ';');
    comm.send({got: msg.content.data.foo});
  });
  comm.on_close(function (msg) { $('#comm-log').append('closed;'); });
});"""
COMM_FROM_KERNEL = """from ipykernel.comm import Comm
comm_replies = []
my_comm = Comm(target_name='my_comm_target', data={'foo': 1})
@my_comm.on_msg
def _recv(msg):
    comm_replies.append(msg['content']['data'])
my_comm.send({'foo': 2})"""
PRINT_COMM = "print(comm_replies)"
CLOSE_COMM = "my_comm.close()"
COMM_FROM_PAGE = r'''def target_func(comm, open_msg):
    @comm.on_msg
    def _recv(msg):
        comm.send({'echo': msg['content']['data']['x'] * 2})
    comm.send({'opened_with': open_msg['content']['data']})
get_ipython().kernel.comm_manager.register_target('from_js', target_func)
HTML("""<button id="open-comm" onclick="openComm()">open comm</button><pre id="comm-echo"></pre>
<script>
function openComm() {
  var comm = Jupyter.notebook.kernel.comm_manager.new_comm('from_js', {hello: 1});
  comm.on_msg(function (msg) { $('#comm-echo').append(JSON.stringify(msg.content.data) + ';'); });
  comm.send({x: 21});
}
</script>""")'''

CELLS = [
    LOAD,  # 0
    JQUERY_FORM,  # 1
    REQUIRE_NAME,  # 2
    PRINT_NAME,  # 3
    DEFINE_LABEL,  # 4
    LABEL_BUTTON,  # 5
    PRINT_LABEL,  # 6
    LABELLER,  # 7
    USE_GLOBAL,  # 8
    PRINT_LABELS,  # 9
    ELEMENT_AND_THIS,  # 10
    PRINT_DOM,  # 11
    IFRAME,  # 12
    PRINT_IFRAME,  # 13
    NOTEBOOK_API,  # 14
    WIDGET_CALLBACK,  # 15
    RUN_BELOW,  # 16
    BELOW_1,  # 17
    BELOW_2,  # 18
    COMM_TARGET,  # 19
    COMM_FROM_KERNEL,  # 20
    PRINT_COMM,  # 21
    CLOSE_COMM,  # 22
    COMM_FROM_PAGE,  # 23
    AUTOSAVE,  # 24
]
INDEX = {name: i for i, name in enumerate(
    ["load", "form", "require_name", "print_name", "define_label", "label_button", "print_label", "labeller",
     "use_global", "print_labels", "element", "print_dom", "iframe", "print_iframe", "api", "widget", "run_below",
     "below_1", "below_2", "comm_target", "comm_from_kernel", "print_comm", "close_comm", "comm_from_page", "autosave"])}  # fmt: skip


# ------------------------------------------------------------------------------------
# A second classic notebook, as course material of those years set itself up: no
# output scrolling, a notes box that keeps the notebook's shortcuts away, a button that
# writes and runs a new cell, and the famous "toggle the raw code" cell.
NO_SCROLL = """%%javascript
IPython.OutputArea.prototype._should_scroll = function(lines) {
    return false;
}"""
NOTES = """from IPython.display import HTML
HTML('''<textarea id="notes" onfocus="IPython.keyboard_manager.disable()" onblur="IPython.keyboard_manager.enable()"></textarea>
<script>$('#notes').attr('placeholder', 'Notes on ' + IPython.notebook.notebook_name);</script>''')"""
ADD_CELL = r'''HTML("""<button id="add-cell" onclick="addCell()">Add the exercise</button>
<script>
function addCell() {
    var cell = IPython.notebook.insert_cell_below('code');
    cell.set_text('answer = 6 * 7\\nprint(answer)');
    cell.execute();
}
</script>""")'''
TOGGLE_CODE = """HTML('''<script>
code_show=true;
function code_toggle() {
 if (code_show){
 $('div.input').hide();
 } else {
 $('div.input').show();
 }
 code_show = !code_show
}
$( document ).ready(code_toggle);
</script>
<form action="javascript:code_toggle()"><input type="submit" id="toggle" value="Click here to toggle on/off the raw code."></form>''')"""
COURSE_CELLS = [LOAD, NO_SCROLL, NOTES, ADD_CELL, TOGGLE_CODE]
