"use strict";
function isolateCurves(box){
  var only=null;
  box.querySelectorAll("button[data-name]").forEach(function(button){
    button.addEventListener("click",function(){
      only=only===button.dataset.name?null:button.dataset.name;
      box.querySelectorAll("[data-name]").forEach(function(el){
        el.classList.toggle("dim",only!==null&&el.dataset.name!==only);});
      box.querySelectorAll("button[data-name]").forEach(function(b){
        b.setAttribute("aria-pressed",String(b.dataset.name===only));});
    });
  });
}
function panelSelector(select){
  var box=document.getElementById(select.dataset.panels);
  function show(){box.querySelectorAll("[data-panel]").forEach(function(p){p.hidden=p.dataset.panel!==select.value;});}
  select.addEventListener("change",show);show();
}
function itemBrowser(section){
  var data=JSON.parse(document.getElementById("item-data").textContent);
  var PAGE=50,page=0,open={},controls={};
  section.querySelectorAll("[data-filter]").forEach(function(s){controls[s.dataset.filter]=s;});
  function option(select,value,text){
    var o=document.createElement("option");o.value=value;o.textContent=text;select.appendChild(o);}
  var families=[];data.cells.forEach(function(c){if(families.indexOf(c[0])<0)families.push(c[0]);});
  families.forEach(function(f){option(controls.family,f,f);});
  data.predictors.forEach(function(p,i){option(controls.score,String(i),p);});
  function fillCells(){
    var keep=controls.cell.value,family=controls.family.value;controls.cell.length=1;
    data.cells.forEach(function(c,i){
      if(!family||c[0]===family)option(controls.cell,String(i),family?c[1]:c[0]+"/"+c[1]);});
    controls.cell.value=Array.prototype.some.call(controls.cell.options,function(o){return o.value===keep;})?keep:"";
  }
  function cellName(r){var c=data.cells[r[1]];return c[0]+"/"+c[1];}
  function score(r,i){return r[8]&&i>=0?r[8][i]/1000:null;}
  function chosen(){return controls.score.value===""?-1:Number(controls.score.value);}
  function selected(){
    var f=controls.family.value,c=controls.cell.value,s=controls.split.value,o=controls.outcome.value;
    var list=data.items.filter(function(r){
      return(!f||data.cells[r[1]][0]===f)&&(!c||String(r[1])===c)&&(!s||r[2]===s)&&(!o||String(r[3])===o);});
    var i=chosen(),sign={desc:-1,asc:1}[controls.sort.value];
    if(sign&&i>=0){
      list=list.slice().sort(function(a,b){var x=score(a,i),y=score(b,i);
        if(x===null||y===null)return(x===null)-(y===null);return sign*(x-y);});
    }
    return list;
  }
  function cell(tr,text,cls){
    var td=document.createElement("td");td.textContent=text;td.className=cls;tr.appendChild(td);return td;}
  function detail(r){
    var tr=document.createElement("tr"),td=document.createElement("td"),pre=document.createElement("pre");
    var box=document.createElement("div");tr.className="detail";td.colSpan=7;box.className="scores";
    pre.textContent=(r[4]>=0?data.prefixes[r[4]]:"")+r[5];
    if(r[8]){data.predictors.forEach(function(p,i){
      var s=document.createElement("span");s.textContent=p+" "+(r[8][i]/1000).toFixed(3);box.appendChild(s);});}
    else{box.textContent="base item: no predictions";}
    td.appendChild(pre);td.appendChild(box);tr.appendChild(td);return tr;
  }
  function row(r,i){
    var tr=document.createElement("tr"),id=cell(tr,r[0],"nw"),split=document.createElement("small");
    tr.className="item";split.textContent=r[2];id.appendChild(document.createElement("br"));id.appendChild(split);
    cell(tr,cellName(r),"nw");cell(tr,r[3]?"failed":"passed",r[3]?"nw failed":"nw passed");
    var prompt=cell(tr,r[5],"text prompt");
    if(r[4]>=0){
      var more=document.createElement("span");more.className="prefix";more.textContent="⋯ ";
      more.title="few-shot prefix: click the row for the whole prompt";prompt.insertBefore(more,prompt.firstChild);}
    cell(tr,r[6],"text");cell(tr,r[7],"text");var s=score(r,i);cell(tr,s===null?"—":s.toFixed(3),"nw");
    tr.addEventListener("click",function(){open[r[0]]=!open[r[0]];render();});
    return tr;
  }
  function render(){
    var list=selected(),pages=Math.max(1,Math.ceil(list.length/PAGE)),i=chosen();
    var body=document.getElementById("item-rows");
    page=Math.min(Math.max(page,0),pages-1);body.textContent="";
    document.getElementById("score-head").textContent=i>=0?data.predictors[i]:"score";
    list.slice(page*PAGE,(page+1)*PAGE).forEach(function(r){
      body.appendChild(row(r,i));if(open[r[0]])body.appendChild(detail(r));});
    document.getElementById("item-count").textContent=list.length?
      "items "+(page*PAGE+1)+"–"+Math.min(list.length,(page+1)*PAGE)+" of "+list.length:"no item matches";
    section.setAttribute("data-rendered",String(body.children.length));
  }
  controls.family.addEventListener("change",function(){fillCells();page=0;render();});
  ["cell","split","outcome","score","sort"].forEach(function(k){
    controls[k].addEventListener("change",function(){page=0;render();});});
  section.querySelectorAll("[data-page]").forEach(function(b){
    b.addEventListener("click",function(){page+=Number(b.dataset.page);render();});});
  fillCells();render();
}
document.querySelectorAll(".roc").forEach(isolateCurves);
document.querySelectorAll("select[data-panels]").forEach(panelSelector);
itemBrowser(document.getElementById("items"));
document.documentElement.setAttribute("data-height",String(document.documentElement.scrollHeight));
document.documentElement.setAttribute("data-ready","1");
